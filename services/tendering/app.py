"""The tendering department's entry point: `python -m faust -A services.tendering.app worker`."""

from services.runtime.department import department_app

app = department_app("tendering")
