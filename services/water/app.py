"""The water department's Faust worker: `python -m faust -A services.water.app worker`."""

from services.runtime.services import department_app

app = department_app("water")
