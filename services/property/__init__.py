"""不动产登记 — real-estate registry: transfer, mortgage, seizure, cancellation, objection;
and the linked-transfer saga.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
