"""The HTTP gateway for backend services (FastAPI); see `starter/api/app.py`."""

from starter.api.app import create_app
from starter.api.server import running_api

__all__ = ["create_app", "running_api"]
