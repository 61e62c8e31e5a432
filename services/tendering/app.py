"""The tendering department's Faust worker: `python -m faust -A services.tendering.app worker`."""

from services.runtime.services import department_app

app = department_app("tendering")
