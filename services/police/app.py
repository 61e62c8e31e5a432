"""The police department's Faust worker: `python -m faust -A services.police.app worker`."""

from services.runtime.department_service import department_app

app = department_app("police")
