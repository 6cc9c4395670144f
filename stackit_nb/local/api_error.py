"""The error every part of the local server raises to answer with an OpenAI-shaped error body.

Request validation, the answer engines and the routes all raise it; the server's exception
handler turns it into the body (``wire.error_body``) and status. Kept in its own module so
that engines and validation can raise it without importing each other.
"""

from __future__ import annotations


class APIError(Exception):
    """An error answered in the OpenAI shape: ``status``, ``message`` and the ``param`` at fault."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
