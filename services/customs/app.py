"""The customs department's entry point: `python -m faust -A services.customs.app worker`."""

from services.runtime.department import department_app

app = department_app("customs")
