"""Capacity engine (SimPy) and demand replay."""
