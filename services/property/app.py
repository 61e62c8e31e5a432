"""The property department's Faust worker: `python -m faust -A services.property.app worker`."""

from services.runtime.services import department_app

app = department_app("property")
