"""国网上饶供电公司 — power: low/high-voltage connections, account transfer.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
