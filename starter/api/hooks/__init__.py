"""Webhook routes of the named email and SMS providers, one module each, verified their way."""
