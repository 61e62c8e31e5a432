"""The one-window front desk's entry point: `python -m faust -A services.window.app worker`."""

from services.runtime.department import department_app

app = department_app("window")
