"""房屋交易管理部门(市住建局) — housing transaction review (房屋交易审核, 合同备案) in
the property transfers.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
