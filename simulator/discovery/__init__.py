"""Discovery of a scenario from an event log, and log distances (issue 14)."""
