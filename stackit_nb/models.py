"""Which models the endpoint serves, and what each one can do.

STACKIT retires and adds models often, so the list always comes from the live ``GET /v1/models``.
Capabilities come from the endpoint's extra fields when it sends them (the local server does) and
otherwise from a small built-in table of known STACKIT ids, then from the id itself.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from stackit_nb._common import markdown_literal

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

# What is known about STACKIT's shared models: id -> (kind, capabilities, context length).
#: What the CLI and the %%stackit magic use when no model is named (a current shared model each).
DEFAULT_CHAT_MODEL = "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic"
DEFAULT_VISION_MODEL = "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"

_KNOWN: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8": ("chat", ("vision",), 218_000),
    "google/gemma-3-27b-it": ("chat", ("vision",), 37_000),
    "google/gemma-4-31b-it": ("chat", ("vision",), None),
    "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic": ("chat", ("tools",), None),
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": ("chat", (), None),
    "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8": ("chat", (), None),
    "neuralmagic/Mistral-Nemo-Instruct-2407-FP8": ("chat", (), None),
    "meta-llama/Llama-3.2-11B-Vision-Instruct": ("chat", ("vision",), None),
    "Qwen/Qwen3.6-27B": ("chat", (), None),
    "openai/gpt-oss-120b": ("chat", ("reasoning", "tools"), None),
    "openai/gpt-oss-20b": ("chat", ("reasoning", "tools"), None),
    "intfloat/e5-mistral-7b-instruct": ("embedding", (), 4_096),
    "Qwen/Qwen3-VL-Embedding-8B": ("embedding", ("dimensions",), 32_000),
}


def _guess(model_id: str) -> tuple[str, tuple[str, ...]]:
    """Kind and capabilities read from an unknown id, so a new model still renders sensibly."""
    lowered = model_id.lower()
    if "embed" in lowered or "/e5-" in lowered:
        return "embedding", ()
    vision = any(mark in lowered for mark in ("vision", "-vl-", "gemma-3", "gemma-4", "pixtral"))
    return "chat", ("vision",) if vision else ()


@dataclass(frozen=True)
class ModelInfo:
    """One model the endpoint serves.

    :param id: The model id to pass as ``model=``.
    :param kind: ``"chat"`` or ``"embedding"``.
    :param capabilities: For example ``("vision",)``, ``("reasoning", "tools")``.
    :param context_length: Context window in tokens, when known.
    :param legacy: Whether the endpoint marks the model as retired or kept for old examples.
    :param source: ``"server"`` when the endpoint described the model, ``"builtin"`` when the
        built-in table did, ``"guess"`` when only the id was available.
    """

    id: str
    kind: str = "chat"
    capabilities: tuple[str, ...] = ()
    context_length: int | None = None
    legacy: bool = False
    source: str = "server"

    @property
    def accepts_images(self) -> bool:
        """Whether the model takes image input."""
        return "vision" in self.capabilities

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> ModelInfo:
        """Build from one ``data[]`` entry of ``GET /v1/models``."""
        model_id = str(entry["id"])
        known = _KNOWN.get(model_id)
        if "capabilities" in entry or "kind" in entry:
            caps = entry.get("capabilities") or []
            kind = entry.get("kind") or ("embedding" if "embedding" in caps else "chat")
            # "chat"/"embedding" are kinds, not capabilities worth a column of their own
            capabilities = tuple(c for c in caps if c not in {"chat", "embedding"})
            if entry.get("supports_dimensions") and "dimensions" not in capabilities:
                capabilities += ("dimensions",)
            context = entry.get("context_length") or entry.get("max_model_len")
            source = "server"
        elif known is not None:
            kind, capabilities, context = known
            context = entry.get("max_model_len") or context
            source = "builtin"
        else:
            kind, capabilities = _guess(model_id)
            context = entry.get("max_model_len")
            source = "guess"
        return cls(
            id=model_id,
            kind=kind,
            capabilities=tuple(capabilities),
            context_length=int(context) if context else None,
            legacy=bool(entry.get("legacy", False)),
            source=source,
        )


class ModelList(list[ModelInfo]):
    """The models an endpoint serves; renders as a table in a notebook.

    Example::

        models = stackit_nb.list_models()
        models  # a table in Jupyter
        models.vision.ids  # ['Qwen/Qwen3-VL-235B-A22B-Instruct-FP8', ...]
    """

    def __init__(self, models: list[ModelInfo] | None = None, *, base_url: str = "") -> None:
        super().__init__(models or [])
        self.base_url = base_url

    def _subset(self, keep: list[ModelInfo]) -> ModelList:
        return ModelList(keep, base_url=self.base_url)

    @property
    def ids(self) -> list[str]:
        """The model ids, in the endpoint's order."""
        return [m.id for m in self]

    @property
    def chat(self) -> ModelList:
        """Only the chat models."""
        return self._subset([m for m in self if m.kind == "chat"])

    @property
    def embedding(self) -> ModelList:
        """Only the embedding models."""
        return self._subset([m for m in self if m.kind == "embedding"])

    @property
    def vision(self) -> ModelList:
        """Only the models that accept images."""
        return self._subset([m for m in self if m.accepts_images])

    def get(self, model_id: str) -> ModelInfo | None:
        """The entry for ``model_id``, or ``None``."""
        return next((m for m in self if m.id == model_id), None)

    def closest(self, model_id: str, n: int = 3, *, kind: str | None = None) -> list[str]:
        """Up to ``n`` ids that look most like ``model_id`` (for "did you mean" messages)."""
        wanted = model_id.lower()
        wanted_tail = wanted.rsplit("/", 1)[-1]

        def score(candidate: str) -> float:
            lowered = candidate.lower()
            whole = SequenceMatcher(None, wanted, lowered).ratio()
            # compare without the organisation too: "gpt-oss-120b" should find "openai/gpt-oss-120b"
            tail = SequenceMatcher(None, wanted_tail, lowered.rsplit("/", 1)[-1]).ratio()
            return max(whole, tail)

        pool = [m.id for m in self if kind is None or m.kind == kind] or self.ids
        ranked = sorted(pool, key=score, reverse=True)
        return [c for c in ranked if score(c) >= 0.4][:n]

    def _rows(self, text: Callable[[str], str] = str) -> list[tuple[str, str, str, str]]:
        return [
            (
                text(m.id) + (" (legacy)" if m.legacy else ""),
                m.kind,
                ", ".join(m.capabilities) or "-",
                f"{m.context_length:,}" if m.context_length else "-",
            )
            for m in self
        ]

    _HEADER = ("model", "kind", "capabilities", "context")

    def __str__(self) -> str:
        rows = [self._HEADER, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(line.rstrip() for line in lines)

    def _repr_markdown_(self) -> str:
        # the ids are the endpoint's text: as Markdown, "![x](https://...)" would load an image
        rows = [self._HEADER, ("---",) * 4, *self._rows(markdown_literal)]
        table = "\n".join("| " + " | ".join(r) + " |" for r in rows)
        return f"{len(self)} models at `{self.base_url}`\n\n{table}"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._HEADER)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self._rows()
        )
        caption = f"{len(self)} models at <code>{html.escape(self.base_url)}</code>"
        return f"<table><caption>{caption}</caption><tr>{head}</tr>{body}</table>"


def _to_list(entries: list[Any], base_url: str) -> ModelList:
    dumped = [e.model_dump() if hasattr(e, "model_dump") else dict(e) for e in entries]
    return ModelList([ModelInfo.from_api(e) for e in dumped], base_url=base_url)


def fetch_models(client: OpenAI) -> ModelList:
    """The endpoint's models, through an existing OpenAI client."""
    return _to_list(list(client.models.list().data), str(client.base_url))


async def afetch_models(client: AsyncOpenAI) -> ModelList:
    """The endpoint's models, through an existing async OpenAI client."""
    page = await client.models.list()
    return _to_list(list(page.data), str(client.base_url))


def builtin_models() -> ModelList:
    """The built-in table of known STACKIT models (a fallback when the endpoint cannot be asked)."""
    return ModelList(
        [
            ModelInfo(id=i, kind=k, capabilities=c, context_length=n, source="builtin")
            for i, (k, c, n) in _KNOWN.items()
        ]
    )
