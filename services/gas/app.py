"""The gas department's entry point: `python -m faust -A services.gas.app worker`."""

from services.utilities.service import utility_app

app = utility_app("gas")
