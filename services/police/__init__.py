"""公安局 — official seal engraving (公章刻制).

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
