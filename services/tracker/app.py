"""The tracker's entry point: `python -m faust -A services.tracker.app worker`."""

from services.tracker.service import tracker_app

app = tracker_app()
