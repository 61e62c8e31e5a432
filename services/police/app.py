"""The police department's entry point: `python -m faust -A services.police.app worker`."""

from services.runtime.department import department_app

app = department_app("police")
