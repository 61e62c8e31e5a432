"""The property department's entry point: `python -m faust -A services.property.app worker`."""

from services.property.service import property_app

app = property_app()
