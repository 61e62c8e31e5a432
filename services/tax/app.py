"""The tax department's Faust worker: `python -m faust -A services.tax.app worker`."""

from services.runtime.services import department_app

app = department_app("tax")
