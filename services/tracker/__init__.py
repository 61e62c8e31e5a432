"""Tracker — observes all events, measures each case against its targets.

The department's steps are the catalog's (``services/core/data/catalog.yaml``).
"""
