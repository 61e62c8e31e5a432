"""住房公积金中心 — housing-fund registration.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
