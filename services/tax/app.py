"""The tax department's entry point: `python -m faust -A services.tax.app worker`."""

from services.tax.service import tax_app

app = tax_app()
