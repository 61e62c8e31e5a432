"""The approval department's Faust worker: `python -m faust -A services.approval.app worker`."""

from services.runtime.services import department_app

app = department_app("approval")
