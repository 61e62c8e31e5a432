"""供气企业 — gas: connections, complaints, account transfer.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
