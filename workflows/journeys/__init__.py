"""The journeys, one per file: `workflows/journeys/<name with _>.py` (see `workflows.catalog`)."""
