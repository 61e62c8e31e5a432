"""The housing fund centre's Faust worker: `faust -A services.housingfund.app worker`."""

from services.runtime.services import department_app

app = department_app("housingfund")
