"""The finance department's entry point: `python -m faust -A services.finance.app worker`."""

from services.runtime.department import department_app

app = department_app("finance")
