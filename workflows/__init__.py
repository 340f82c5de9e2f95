"""Workflows: the contact workflow, the journeys (`workflows/journeys/`, one per file,
listed by `workflows.catalog`) and the toolkit they share."""
