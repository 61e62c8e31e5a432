"""公共资源交易 — tender objections and rule consultations.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
