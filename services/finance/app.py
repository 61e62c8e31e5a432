"""The finance department's Faust worker: `python -m faust -A services.finance.app worker`."""

from services.runtime.services import department_app

app = department_app("finance")
