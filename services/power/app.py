"""The power department's entry point: `python -m faust -A services.power.app worker`."""

from services.utilities.service import utility_app

app = utility_app("power")
