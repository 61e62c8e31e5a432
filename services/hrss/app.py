"""The hrss department's Faust worker: `python -m faust -A services.hrss.app worker`."""

from services.runtime.services import department_app

app = department_app("hrss")
