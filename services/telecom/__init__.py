"""通信运营商 — telecom: account transfer in linked transfers.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
