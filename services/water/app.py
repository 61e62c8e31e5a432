"""The water department's entry point: `python -m faust -A services.water.app worker`."""

from services.utilities.service import utility_app

app = utility_app("water")
