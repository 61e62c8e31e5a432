"""The housing fund's entry point: `python -m faust -A services.housingfund.app worker`."""

from services.runtime.department import department_app

app = department_app("housingfund")
