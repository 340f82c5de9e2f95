"""Payload models (cross workflow boundaries), sqlmodel tables and settings.

Payload models live in `events`, `journeys` and `messages`; database tables in
`tables`; configuration in `settings`. Table rows never cross a workflow
boundary: workflows pass ids and the small pydantic models defined here.
"""
