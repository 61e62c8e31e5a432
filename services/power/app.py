"""The power department's Faust worker: `python -m faust -A services.power.app worker`."""

from services.runtime.services import department_app

app = department_app("power")
