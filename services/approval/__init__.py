"""行政审批 — parallel approvals of utility connection works (涉电、涉水气工程).

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
