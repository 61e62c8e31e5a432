"""The housing department's entry point: `python -m faust -A services.housing.app worker`."""

from services.runtime.department import department_app

app = department_app("housing")
