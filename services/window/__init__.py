"""行政服务中心综合窗口 — the one-window front desk (一窗受理): intake of 企业开办 and the
不动产 transfers, and the one-time issue of licence, seal and invoices.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
