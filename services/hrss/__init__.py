"""人社局 — social-security registration and closure.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
