"""The HTTP gateway for backend services (FastAPI): `app.py` builds it, `server.py` serves it.

Nothing is imported here, so that `starter.api.schemas` (used by the Python
client and the CLI) loads without FastAPI.
"""
