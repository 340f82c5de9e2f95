"""Reading a webhook's JSON body: 400 when it is not JSON, 422 when it is not what it should be."""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import HTTPException, status
from pydantic import TypeAdapter, ValidationError

Body = TypeVar("Body")


def json_body(body: bytes, shape: TypeAdapter[Body], *, what: str) -> Body:
    """`body` read as `shape`.

    Raises:
        HTTPException: 400 when it is not JSON, 422 (naming `what`) when it is not `shape`.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not JSON") from None
    try:
        return shape.validate_python(data)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not {what}: {error}") from None
