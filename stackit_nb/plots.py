"""Figures for what the toolkit measures, all in one style, each returned as a matplotlib Figure.

- :func:`embedding_map`: embeddings projected to 2D (PCA with numpy), one labelled point each.
- :func:`similarity_heatmap`: the cosine similarity of every pair, annotated.
- :func:`batch_figure` (``BatchResult.plot()``): request latencies and requests over time, 429s
  marked.
- :func:`comparison_figure` (``Comparison.plot()``): time to first token and tokens/s per model.

matplotlib is needed by these functions only: it is imported on first use (``pip install
'stackit-nb[plots]'``), so ``import stackit_nb`` never loads it. In a notebook a returned Figure
displays itself; elsewhere ``fig.savefig("map.png")`` writes it.

Example::

    from stackit_nb.plots import embedding_map

    docs = STACKITDocumentEmbedder(model=...).run(documents)["documents"]
    embedding_map(docs)
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["batch_figure", "comparison_figure", "embedding_map", "similarity_heatmap"]

INSTALL_HINT = (
    "stackit_nb's plots need matplotlib, which is not installed here. Install it with "
    "`pip install 'stackit-nb[plots]'` (or `pip install matplotlib`) and run this again."
)

# One palette for every figure (Okabe-Ito: tells colours apart with any colour vision).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
OK_COLOR, RATE_LIMITED_COLOR, ERROR_COLOR = PALETTE[0], "#C0392B", PALETTE[1]
_LABEL_WIDTH = 28  # characters of a document's text used as its label
_ANNOTATE_UP_TO = 20  # a heatmap with more rows gets no numbers in its cells (unreadable)


def _style() -> Any:  # rcParams for matplotlib.rc_context
    from cycler import cycler  # installed with matplotlib

    return {
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "figure.constrained_layout.use": True,
        "figure.titlesize": 12,
        "font.size": 9.5,
        "axes.titlesize": 10.5,
        "axes.titlelocation": "left",
        "axes.labelsize": 9.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.6,
        "axes.prop_cycle": cycler(color=list(PALETTE)),
        "legend.frameon": False,
        "image.cmap": "viridis",
    }


@contextlib.contextmanager
def _styled() -> Iterator[Any]:
    """pyplot, with the shared style applied to everything drawn inside the block.

    pyplot (not a bare Figure) so that a notebook's inline backend knows how to show the
    figures; each figure is closed before it is returned, so it is shown once, as the result.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    with plt.rc_context(_style()):
        yield plt


def _new_figure(plt: Any, ncols: int, size: tuple[float, float]) -> tuple[Figure, list[Any]]:
    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    plt.close(fig)
    return fig, list(axes[0])


# -- embeddings ------------------------------------------------------------------------------------


def _shorten(text: str, width: int = _LABEL_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _embed(texts: list[str], embedder: Any) -> list[list[float]]:
    """Vectors for ``texts``: ``embedder`` is a model id or a Haystack text/document embedder."""
    if embedder is None:
        raise ValueError(
            "texts need an embedder to become vectors: pass embedder= a model id "
            "(e.g. embedder='intfloat/e5-mistral-7b-instruct'), a STACKITDocumentEmbedder or a "
            "STACKITTextEmbedder, or pass the vectors or embedded Documents instead"
        )
    from haystack import Document

    if isinstance(embedder, str):
        from stackit_nb.embedders import STACKITDocumentEmbedder

        embedder = STACKITDocumentEmbedder(model=embedder, progress_bar=False)
    run = getattr(embedder, "run", None)
    if not callable(run):
        raise TypeError(
            f"{type(embedder).__name__} is not an embedder (it has no run()): pass a "
            "STACKITDocumentEmbedder, a STACKITTextEmbedder or a model id"
        )
    parameters = inspect.signature(run).parameters
    if "documents" in parameters:
        documents = embedder.run(documents=[Document(content=t) for t in texts])["documents"]
        return [d.embedding for d in documents]
    if "text" in parameters:
        return [embedder.run(text=t)["embedding"] for t in texts]
    raise TypeError(
        f"{type(embedder).__name__} is not an embedder: its run() takes neither documents= "
        "nor text=; pass a STACKITDocumentEmbedder, a STACKITTextEmbedder or a model id"
    )


def _vectors(items: Any, labels: Sequence[str] | None, embedder: Any) -> tuple[Any, list[str]]:
    """An (n, d) float array and one label per row, from texts, Documents or vectors."""
    if isinstance(items, np.ndarray):
        rows: list[Any] = list(items) if items.ndim == 2 else [items]
    elif isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise TypeError(
            "pass a list of embedded Documents, of texts or of vectors (or a 2D numpy array), "
            f"not {type(items).__name__}"
        )
    else:
        rows = list(items)
    if not rows:
        raise ValueError("nothing to plot: the list is empty")
    default_labels: list[str]
    if all(isinstance(r, str) for r in rows):
        default_labels = [_shorten(r) for r in rows]
        rows = _embed(rows, embedder)
    elif all(hasattr(r, "embedding") and hasattr(r, "content") for r in rows):
        default_labels = [_shorten(r.content or r.id) for r in rows]
        missing = [i for i, r in enumerate(rows) if r.embedding is None]
        if missing and embedder is not None:
            rows = _embed([r.content or "" for r in rows], embedder)
        elif missing:
            raise ValueError(
                f"Document {missing[0]} has no embedding ({len(missing)} of {len(rows)} have "
                "none): run them through STACKITDocumentEmbedder first, or pass embedder="
            )
        else:
            rows = [r.embedding for r in rows]
    elif any(isinstance(r, str | bytes) or hasattr(r, "content") for r in rows):
        raise TypeError(
            "every item must be a text, an embedded Document or a vector (a list of numbers), "
            "all of the same kind"
        )
    else:
        default_labels = [f"#{i}" for i in range(len(rows))]
    try:
        sizes = {len(r) for r in rows}
        matrix = np.asarray(rows, dtype=float) if len(sizes) == 1 else None
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "every item must be a text, an embedded Document or a vector (a list of numbers), "
            "all of the same kind"
        ) from exc
    if matrix is None:
        raise ValueError(
            f"the vectors differ in length ({', '.join(map(str, sorted(sizes)))}): they come "
            "from different models or `dimensions` settings; embed them all with one embedder"
        )
    if not np.all(np.isfinite(matrix)):
        raise ValueError("a vector holds NaN or infinity: check the embedder's output")
    if labels is None:
        return matrix, default_labels
    labels = [str(label) for label in labels]
    if len(labels) != len(matrix):
        raise ValueError(f"got {len(labels)} labels for {len(matrix)} items: give one per item")
    return matrix, labels


def project_2d(matrix: Any) -> tuple[Any, Any]:
    """PCA: the (n, 2) coordinates on the first two principal components, and the share of the
    variance each explains. Signs are fixed (each axis' largest coordinate is positive), so the
    same input always draws the same way."""
    centered = matrix - matrix.mean(axis=0)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    coords = np.zeros((len(matrix), 2))
    k = min(2, len(s))
    coords[:, :k] = u[:, :k] * s[:k]
    for axis in range(2):
        column = coords[:, axis]
        if column[np.argmax(np.abs(column))] < 0:
            coords[:, axis] = -column
    variance = s**2
    total = variance.sum()
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = variance[:k] / total
    return coords, explained


def embedding_map(
    documents_or_vectors: Any,
    labels: Sequence[str] | None = None,
    *,
    embedder: Any = None,
    title: str | None = None,
) -> Figure:
    """A 2D map of embeddings: PCA to two dimensions, one labelled point per item.

    Items close together on the map have similar embeddings (as far as two dimensions can show:
    the axis labels say how much of the variance each keeps).

    :param documents_or_vectors: Embedded Haystack ``Document`` objects, vectors (lists of
        numbers or a 2D numpy array), or texts (then ``embedder`` is needed).
    :param labels: One label per item; defaults to the start of each text, or ``#0, #1, ...``.
    :param embedder: For texts or Documents without embeddings: a model id or a Haystack
        text/document embedder.
    :param title: The figure's title.
    :returns: A matplotlib ``Figure``.

    Example::

        embedding_map(docs)  # docs from STACKITDocumentEmbedder(...).run(...)["documents"]
        embedding_map([[0.1, 0.9], [0.8, 0.2]], labels=["cat", "car"])
    """
    matrix, names = _vectors(documents_or_vectors, labels, embedder)
    if len(matrix) < 2:
        raise ValueError("a map needs at least two items")
    coords, explained = project_2d(matrix)
    with _styled() as plt:
        fig, (ax,) = _new_figure(plt, 1, (6.4, 4.8))
        ax.scatter(coords[:, 0], coords[:, 1], s=36, color=OK_COLOR, zorder=3, gid="points")
        for (x, y), name in zip(coords, names, strict=True):
            ax.annotate(name, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8.5)
        ax.set_xlabel(f"principal component 1 ({explained[0]:.0%} of the variance)")
        ax.set_ylabel(f"principal component 2 ({explained[1]:.0%} of the variance)")
        dims = matrix.shape[1]
        ax.set_title(title or f"{len(matrix)} embeddings ({dims} dimensions), PCA to 2D")
        ax.margins(0.15)
    return fig


def cosine_similarities(matrix: Any) -> Any:
    """The (n, n) matrix of cosine similarities between the rows of ``matrix``."""
    norms = np.linalg.norm(matrix, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"vector {int(np.argmin(norms))} is all zeros: it has no direction")
    unit = matrix / norms[:, None]
    return np.clip(unit @ unit.T, -1.0, 1.0)


def similarity_heatmap(
    texts_or_documents_or_vectors: Any,
    labels: Sequence[str] | None = None,
    *,
    embedder: Any = None,
    title: str | None = None,
) -> Figure:
    """The cosine similarity of every pair of items, as an annotated heatmap.

    :param texts_or_documents_or_vectors: Texts (with ``embedder``), embedded ``Document``
        objects, or vectors.
    :param labels: One label per item; defaults to the start of each text, or ``#0, #1, ...``.
    :param embedder: A model id or a Haystack text/document embedder, for texts.
    :param title: The figure's title.
    :returns: A matplotlib ``Figure``; cells carry their value up to 20 items.

    Example::

        texts = ["a cat", "a kitten", "a car"]
        similarity_heatmap(texts, embedder="intfloat/e5-mistral-7b-instruct")
    """
    matrix, names = _vectors(texts_or_documents_or_vectors, labels, embedder)
    similarities = cosine_similarities(matrix)
    n = len(names)
    with _styled() as plt:
        side = min(3.0 + 0.45 * n, 12.0)
        fig, (ax,) = _new_figure(plt, 1, (side + 1.2, side))
        low = min(0.0, float(similarities.min()))
        image = ax.imshow(similarities, vmin=low, vmax=1.0)
        ax.grid(False)
        ax.set_xticks(range(n), names, rotation=40, ha="right")
        ax.set_yticks(range(n), names)
        if n <= _ANNOTATE_UP_TO:
            middle = (low + 1.0) / 2
            for i in range(n):
                for j in range(n):
                    value = similarities[i, j]
                    color = "black" if value > middle else "white"
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=color, size=8)
        fig.colorbar(image, ax=ax, label="cosine similarity", shrink=0.8)
        ax.set_title(title or f"Cosine similarity of {n} embeddings")
    return fig


# -- batches and comparisons ----------------------------------------------------------------------


def batch_figure(result: Any) -> Figure:
    """``BatchResult.plot()``: how long successful requests took, and every request over time
    (one row per item, 429s and errors marked)."""
    records = [(item.index, r) for item in result for r in item.requests]
    latencies = [r.finished - r.started for _, r in records if r.outcome == "ok"]
    summary = result.summary
    with _styled() as plt:
        fig, (hist, timeline) = _new_figure(plt, 2, (11.0, 4.0))
        if latencies:
            bins = min(30, max(5, len(latencies) // 3))
            hist.hist(latencies, bins=bins, color=OK_COLOR, edgecolor="white")
            median = float(np.median(latencies))
            hist.axvline(median, color="black", linestyle="--", linewidth=1)
            hist.annotate(
                f"median {median:.2f} s", (median, 1), xycoords=("data", "axes fraction"),
                xytext=(4, -12), textcoords="offset points",
            )  # fmt: skip
        else:
            hist.text(0.5, 0.5, "no successful request", ha="center", transform=hist.transAxes)
        hist.set_xlabel("seconds per successful request")
        hist.set_ylabel("requests")
        hist.yaxis.get_major_locator().set_params(integer=True)
        hist.set_title("Latency")

        def kind(outcome: str) -> str:
            return outcome if outcome in ("ok", "rate_limited") else "error"

        for outcome, color, marker, name in (
            ("ok", OK_COLOR, None, "answered"),
            ("rate_limited", RATE_LIMITED_COLOR, "x", "429 rate limited"),
            ("error", ERROR_COLOR, "o", "error"),
        ):
            chosen = [(i, r) for i, r in records if kind(r.outcome) == outcome]
            if not chosen:
                continue
            rows = [i for i, _ in chosen]
            ends = [r.finished for _, r in chosen]
            starts = [r.started for _, r in chosen]
            timeline.hlines(
                rows, starts, ends, color=color, linewidth=2.5, gid=f"requests:{outcome}"
            )
            if marker is not None:
                timeline.scatter(
                    ends, rows, marker=marker, color=color, s=30, zorder=3,
                    label=f"{name} ({len(chosen)})", gid=outcome,
                )  # fmt: skip
        timeline.set_xlabel("seconds since the batch started")
        timeline.set_ylabel("item")
        timeline.set_title("Requests over time")
        timeline.invert_yaxis()  # item 0 on top, as in a list
        if timeline.get_legend_handles_labels()[0]:  # above the plot, beside the title
            timeline.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0)
        fig.suptitle(
            f"{summary.items} items, {summary.ok} ok, {summary.attempts} requests, "
            f"{summary.rate_limited} answered 429, {summary.wall_time:.1f} s"
        )
    return fig


def comparison_figure(
    models: Sequence[str], ttft: Sequence[float | None], tokens_per_second: Sequence[float | None]
) -> Figure:
    """``Comparison.plot()``: time to first token and tokens/s per model (missing: no bar)."""
    with _styled() as plt:
        fig, axes = _new_figure(plt, 2, (11.0, 1.4 + 0.45 * max(3, len(models))))
        names = [_shorten(m, 60) for m in models]
        for ax, values, label, title in (
            (axes[0], ttft, "seconds (lower is faster)", "Time to first token"),
            (axes[1], tokens_per_second, "tokens per second (higher is faster)", "Tokens/s"),
        ):
            heights = [np.nan if v is None else v for v in values]
            bars = ax.barh(names, heights, color=PALETTE[: len(names)], gid=title)
            ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
            ax.set_xlabel(label)
            ax.set_title(title)
            ax.invert_yaxis()
            ax.grid(axis="y", visible=False)
            ax.margins(x=0.2)
        axes[1].set_yticks(range(len(names)), [""] * len(names))
    return fig
