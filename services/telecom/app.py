"""The telecom department's Faust worker: `python -m faust -A services.telecom.app worker`."""

from services.runtime.services import department_app

app = department_app("telecom")
