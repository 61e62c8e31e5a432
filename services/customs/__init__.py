"""上饶海关 — import/export clearance, customs record closure.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
