"""govflow: digital twin of Shangrao's business-environment workflows."""

__version__ = "0.1.0"
