"""Payload models (cross workflow boundaries), sqlmodel tables and settings.

Payload models live in `events`, `journeys`, `messages`, `contact_workflow`,
`lead_score`, `handoff`, `crm` and `renewals`; ids in `ids`; database tables in
`tables` (engine and migrations in `db`); configuration in `settings`. Table
rows never cross a workflow boundary: workflows pass ids and the small pydantic
models defined here. The rules that act on them are in `rules/`.
"""
