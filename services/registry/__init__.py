"""市场监管局 — company registry: 企业登记, 普通注销登记.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
