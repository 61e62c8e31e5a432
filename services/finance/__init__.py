"""财政局 — government procurement (质疑, 投诉, award, contract, payment).

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
