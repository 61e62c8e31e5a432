"""The customs department's Faust worker: `python -m faust -A services.customs.app worker`."""

from services.runtime.services import department_app

app = department_app("customs")
