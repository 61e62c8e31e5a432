"""The gas department's Faust worker: `python -m faust -A services.gas.app worker`."""

from services.runtime.services import department_app

app = department_app("gas")
