"""stackit_nb: use STACKIT's AI models from a Jupyter notebook.

The public API, loaded lazily so that ``import stackit_nb`` stays cheap (widgets, pillow and the
local server are imported only when first used)::

    import stackit_nb
    from stackit_nb import STACKITChatGenerator

    stackit_nb.connect()  # real STACKIT with STACKIT_API_KEY, else a local server
    gen = STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8")
    print(gen.run("Tell me a joke.")["replies"][0].text)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that owns it
_EXPORTS: dict[str, str] = {
    "STACKITChatGenerator": "stackit_nb.generator",
    "STACKITTextEmbedder": "stackit_nb.embedders",
    "STACKITDocumentEmbedder": "stackit_nb.embedders",
    "connect": "stackit_nb.connection",
    "list_models": "stackit_nb.connection",
    "LocalSTACKIT": "stackit_nb.local",
    "trust_loaded_settings": "stackit_nb._trust",
    "compare": "stackit_nb.comparison",
    "acompare": "stackit_nb.comparison",
    "Comparison": "stackit_nb.comparison",
}

__all__ = [
    "Comparison",
    "LocalSTACKIT",
    "STACKITChatGenerator",
    "STACKITDocumentEmbedder",
    "STACKITTextEmbedder",
    "__version__",
    "acompare",
    "compare",
    "connect",
    "list_models",
    "trust_loaded_settings",
]

if TYPE_CHECKING:
    from stackit_nb._trust import trust_loaded_settings
    from stackit_nb.comparison import Comparison, acompare, compare
    from stackit_nb.connection import connect, list_models
    from stackit_nb.embedders import STACKITDocumentEmbedder, STACKITTextEmbedder
    from stackit_nb.generator import STACKITChatGenerator
    from stackit_nb.local import LocalSTACKIT


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stackit_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext stackit_nb``: register the ``%%stackit`` magic (see :mod:`stackit_nb.magic`)."""
    from stackit_nb.magic import load_ipython_extension as load

    load(ipython)
