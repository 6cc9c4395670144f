"""Which local engine answered: the ``system_fingerprint`` the local server puts on every reply.

Every chat completion from the local server, the plain body and every streamed chunk, carries
``system_fingerprint: "stackit-nb-local-<engine>"`` (``stackit-nb-local-scripted``,
``stackit-nb-local-smollm2``). Real STACKIT sends either no fingerprint or vLLM's own value,
which never starts with :data:`LOCAL_FINGERPRINT_PREFIX`, so a client can tell the two apart::

    from stackit_nb.fingerprint import local_engine_of

    local_engine_of(reply.system_fingerprint)  # "smollm2", or None for a real server

This module imports nothing: the server and client code share it, and reading it loads neither
the server nor Haystack (``_streaming`` consults it for every streamed chunk's reply).
"""

from __future__ import annotations

#: The stable start of every local server fingerprint; the engine name follows it.
LOCAL_FINGERPRINT_PREFIX = "stackit-nb-local-"


def engine_fingerprint(engine: str) -> str:
    """The ``system_fingerprint`` of replies from local engine ``engine``."""
    return LOCAL_FINGERPRINT_PREFIX + engine


def local_engine_of(fingerprint: object) -> str | None:
    """The local engine named by a ``system_fingerprint`` (None: not the local server)."""
    if isinstance(fingerprint, str) and fingerprint.startswith(LOCAL_FINGERPRINT_PREFIX):
        return fingerprint[len(LOCAL_FINGERPRINT_PREFIX) :] or None
    return None
