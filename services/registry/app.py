"""The registry department's entry point: `python -m faust -A services.registry.app worker`."""

from services.runtime.department import department_app

app = department_app("registry")
