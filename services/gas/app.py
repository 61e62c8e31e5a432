"""The gas department's Faust worker: `python -m faust -A services.gas.app worker`."""

from services.runtime.department_service import department_app

app = department_app("gas")
