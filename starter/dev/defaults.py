"""The local stack's ports and demo clock (light: the CLI reads them for its `dev` options)."""

from __future__ import annotations

TEMPORAL_PORT = 7233
UI_PORT = 8233
DEMO_DAY_SECONDS = 15
"""One demo "day" lasts 15 s: the seven-day welcome series runs in under two minutes."""
DEMO_SEGMENT_SWEEP_SECONDS = 10
"""The demo's segment sweep runs this often, so time windows and profile edits show soon."""
DEMO_DELIVERABILITY_CHECK_SECONDS = 30
"""The demo's deliverability guard runs this often (its details show in the UI)."""
