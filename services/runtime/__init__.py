"""Runtime adapters shared by the department services (settings, later Faust and metrics)."""
