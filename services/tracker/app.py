"""The tracker's Faust worker: `python -m faust -A services.tracker.app worker`."""

from services.runtime.services import tracker_app

app = tracker_app()
