"""The business rules: what the worker's activities, the gateway and the CLI decide alike.

Consent and suppressions, the messaging policy (quiet hours, frequency caps),
the lead-scoring model, the sales hand-off configuration (territories, round
robin, SLAs), message templates, unsubscribe tokens and SMS keywords. Rules
stand on `models/` (payloads, tables, settings) and nothing above it: the
activities in `activities/` are thin Temporal wrappers around them, and
`starter/` uses them without importing a workflow or an activity.
"""
