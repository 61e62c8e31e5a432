"""税务局 — tax: invoices/UKey, 清税, 契税 assessment (linked-transfer pivot), export rebates.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
