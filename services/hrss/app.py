"""The hrss department's entry point: `python -m faust -A services.hrss.app worker`."""

from services.runtime.department import department_app

app = department_app("hrss")
