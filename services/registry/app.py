"""The registry department's Faust worker: `python -m faust -A services.registry.app worker`."""

from services.runtime.services import department_app

app = department_app("registry")
