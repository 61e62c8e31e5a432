"""The police department's Faust worker: `python -m faust -A services.police.app worker`."""

from services.runtime.services import department_app

app = department_app("police")
