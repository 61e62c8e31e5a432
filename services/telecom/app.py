"""The telecom department's entry point: `python -m faust -A services.telecom.app worker`."""

from services.utilities.service import utility_app

app = utility_app("telecom")
