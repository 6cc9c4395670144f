"""Notebook widgets: live streaming display, image upload, chat.

Imported lazily: ``import stackit_nb`` does not load ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "StreamingDisplay": "stackit_nb.widgets.stream",
    "ImageUpload": "stackit_nb.widgets.upload",
    "ChatWidget": "stackit_nb.widgets.chat",
}

__all__ = ["ChatWidget", "ImageUpload", "StreamingDisplay"]

if TYPE_CHECKING:
    from stackit_nb.widgets.chat import ChatWidget
    from stackit_nb.widgets.stream import StreamingDisplay
    from stackit_nb.widgets.upload import ImageUpload


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stackit_nb.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
