"""The approval department's entry point: `python -m faust -A services.approval.app worker`."""

from services.runtime.department import department_app

app = department_app("approval")
