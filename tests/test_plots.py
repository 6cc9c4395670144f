"""stackit_nb.plots and BatchResult.plot(): real figures rendered with Agg, checked for content."""

from __future__ import annotations

import io
import subprocess
import sys
from itertools import combinations

import matplotlib
import numpy as np
import pytest
from haystack import Document
from PIL import Image

from stackit_nb import STACKITChatGenerator, STACKITDocumentEmbedder, STACKITTextEmbedder
from stackit_nb.batch import run_many
from stackit_nb.local import LocalSTACKIT
from stackit_nb.plots import (
    INSTALL_HINT,
    OK_COLOR,
    embedding_map,
    similarity_heatmap,
)

matplotlib.use("Agg")

EMBEDDING_MODEL = "intfloat/e5-mistral-7b-instruct"
CHAT_MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"


def rendered(fig: matplotlib.figure.Figure) -> Image.Image:
    """The figure as PNG pixels: drawing it is part of what is tested."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def by_gid(ax: matplotlib.axes.Axes, gid: str) -> list[matplotlib.collections.Collection]:
    return [c for c in ax.collections if c.get_gid() == gid]


def has_color(image: Image.Image, hex_color: str, tolerance: int = 12) -> bool:
    target = np.array(matplotlib.colors.to_rgb(hex_color)) * 255
    pixels = np.asarray(image, dtype=float).reshape(-1, 3)
    return bool(np.any(np.all(np.abs(pixels - target) <= tolerance, axis=1)))


# -- embedding_map ---------------------------------------------------------------------------------


def test_embedding_map_draws_one_labelled_point_per_vector() -> None:
    vectors = [[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0], [2.0, 5.0]]
    names = ["origin", "east", "north", "middle", "far"]
    fig = embedding_map(vectors, labels=names)
    (ax,) = fig.axes
    (points,) = by_gid(ax, "points")
    offsets = np.asarray(points.get_offsets())
    assert offsets.shape == (5, 2)
    assert [t.get_text() for t in ax.texts] == names
    # each label sits at its own point
    assert [tuple(t.xy) for t in ax.texts] == [tuple(p) for p in offsets]
    # PCA of 2D data only turns and shifts it: every distance stays as it was
    for i, j in combinations(range(5), 2):
        original = np.linalg.norm(np.subtract(vectors[i], vectors[j]))
        assert np.linalg.norm(offsets[i] - offsets[j]) == pytest.approx(original)
    assert ax.get_xlabel().startswith("principal component 1 (")
    assert ax.get_ylabel().startswith("principal component 2 (")
    assert ax.get_title("left") == "5 embeddings (2 dimensions), PCA to 2D"
    image = rendered(fig)
    assert image.size == (640, 480)
    assert has_color(image, OK_COLOR)


def test_embedding_map_says_how_much_variance_each_axis_keeps() -> None:
    on_a_line = [[float(i), 2.0 * i, -float(i)] for i in range(6)]
    (ax,) = embedding_map(on_a_line).axes
    assert "(100% of the variance)" in ax.get_xlabel()
    assert "(0% of the variance)" in ax.get_ylabel()
    assert [t.get_text() for t in ax.texts] == [f"#{i}" for i in range(6)]
    # the same input draws the same way every time (PCA signs are fixed)
    again = embedding_map(np.array(on_a_line)[::-1][::-1]).axes[0]
    assert np.allclose(again.collections[0].get_offsets(), ax.collections[0].get_offsets())


def test_embedding_map_of_documents_embedded_by_the_local_server(server: LocalSTACKIT) -> None:
    texts = [
        "The Eiffel Tower is in Paris",
        "Paris is in France.",
        "Leaves make sugar from light",
        "A very long sentence about gardens, hedges and the quiet joy of pruning roses.",
    ]
    embedder = STACKITDocumentEmbedder(model=EMBEDDING_MODEL, progress_bar=False)
    documents = embedder.run([Document(content=t) for t in texts])["documents"]
    (ax,) = embedding_map(documents).axes
    assert len(ax.collections[0].get_offsets()) == 4
    labels = [t.get_text() for t in ax.texts]
    assert labels[:3] == texts[:3]  # short texts are their own labels
    assert labels[3] == "A very long sentence about…"  # cut at 28 characters
    assert "(4096 dimensions)" in ax.get_title("left")


def test_texts_are_embedded_by_a_model_id_or_an_embedder(server: LocalSTACKIT) -> None:
    texts = ["cats purr", "dogs bark", "cars honk"]
    by_id = embedding_map(texts, embedder=EMBEDDING_MODEL).axes[0]
    text_embedder = STACKITTextEmbedder(model=EMBEDDING_MODEL)
    by_component = embedding_map(texts, embedder=text_embedder).axes[0]
    assert [t.get_text() for t in by_id.texts] == texts
    assert np.allclose(
        by_id.collections[0].get_offsets(), by_component.collections[0].get_offsets()
    )


@pytest.mark.parametrize(
    ("items", "kwargs", "error", "message"),
    [
        (["a", "b"], {}, ValueError, "texts need an embedder"),
        ([Document(content="x"), Document(content="y")], {}, ValueError, "has no embedding"),
        ([[1.0, 2.0], [1.0, 2.0, 3.0]], {}, ValueError, "differ in length (2, 3)"),
        ([[1.0, 2.0], [3.0, 4.0]], {"labels": ["one"]}, ValueError, "1 labels for 2 items"),
        ([[1.0, 2.0]], {}, ValueError, "at least two items"),
        ([[1.0, float("nan")], [1.0, 2.0]], {}, ValueError, "NaN or infinity"),
        ("just a string", {}, TypeError, "not str"),
        ([[1.0, 2.0], "text"], {}, TypeError, "all of the same kind"),
        (["a", "b"], {"embedder": object()}, TypeError, "object is not an embedder"),
    ],
)
def test_bad_input_says_what_to_do(
    items: object, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        embedding_map(items, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)


# -- similarity_heatmap ----------------------------------------------------------------------------


def test_similarity_heatmap_annotates_every_cosine() -> None:
    vectors = [[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]]
    fig = similarity_heatmap(vectors, labels=["x", "y", "diagonal", "minus x"])
    ax, colorbar = fig.axes
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert len(cells) == 16
    assert [cells[i, i] for i in range(4)] == ["1.00"] * 4
    assert cells[0, 1] == cells[1, 0] == "0.00"
    assert cells[0, 2] == cells[2, 1] == "0.71"  # cos 45°
    assert cells[0, 3] == "-1.00"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "diagonal", "minus x"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "diagonal", "minus x"]
    assert colorbar.get_ylabel() == "cosine similarity"
    assert ax.images[0].get_array().shape == (4, 4)
    assert rendered(fig).size[0] > 300


def test_similarity_heatmap_of_texts(server: LocalSTACKIT) -> None:
    texts = ["a cat", "a cat", "stock markets fell sharply today"]
    ax = similarity_heatmap(texts, embedder=EMBEDDING_MODEL).axes[0]
    values = ax.images[0].get_array()
    assert values[0, 1] == pytest.approx(1.0)  # the same text, the same vector
    assert values[0, 2] < 0.99
    assert ax.get_title("left") == "Cosine similarity of 3 embeddings"


def test_a_zero_vector_has_no_direction() -> None:
    with pytest.raises(ValueError, match="vector 1 is all zeros"):
        similarity_heatmap([[1.0, 0.0], [0.0, 0.0]])


# -- BatchResult.plot() ----------------------------------------------------------------------------


def test_batch_plot_marks_every_429(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=429, times=3, retry_after=0.05)
    generator = STACKITChatGenerator(model=CHAT_MODEL)
    results = run_many(generator, [f"Write {i + 1} tokens." for i in range(8)], progress=False)
    summary = results.summary
    assert summary.ok == 8 and summary.rate_limited == 3 and summary.attempts == 11
    for item in results:
        assert [r.outcome for r in item.requests][-1] == "ok"
        assert len(item.requests) == item.attempts
        assert all(0 <= r.started <= r.finished <= summary.wall_time for r in item.requests)

    fig = results.plot()
    hist, timeline = fig.axes
    (marks,) = by_gid(timeline, "rate_limited")
    assert len(marks.get_offsets()) == 3
    limited = sorted(
        (r.finished, item.index)
        for item in results
        for r in item.requests
        if r.outcome == "rate_limited"
    )
    assert sorted(map(tuple, np.asarray(marks.get_offsets()))) == limited
    (answered,) = by_gid(timeline, "requests:ok")
    (refused,) = by_gid(timeline, "requests:rate_limited")
    assert len(answered.get_segments()) == 8 and len(refused.get_segments()) == 3
    assert by_gid(timeline, "error") == []
    assert "429 rate limited (3)" in [t.get_text() for t in timeline.get_legend().get_texts()]
    assert sum(p.get_height() for p in hist.patches) == 8  # one count per successful request
    assert hist.get_xlabel() == "seconds per successful request"
    assert timeline.get_xlabel() == "seconds since the batch started"
    assert fig.get_suptitle().startswith("8 items, 8 ok, 11 requests, 3 answered 429, ")
    assert has_color(rendered(fig), "#C0392B")


def test_batch_plot_shows_failed_requests(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=400, times=1)
    generator = STACKITChatGenerator(model=CHAT_MODEL)
    results = run_many(generator, ["Hi"], progress=False)
    fig = results.plot()
    hist, timeline = fig.axes
    (errors,) = by_gid(timeline, "error")
    assert len(errors.get_offsets()) == 1
    assert [t.get_text() for t in hist.texts] == ["no successful request"]


# -- matplotlib is optional ------------------------------------------------------------------------


def test_without_matplotlib_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import` sees when it is missing
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError) as caught:
        embedding_map([[0.0, 1.0], [1.0, 0.0]])
    assert str(caught.value) == INSTALL_HINT
    assert "pip install 'stackit-nb[plots]'" in INSTALL_HINT


def test_importing_the_package_and_batch_module_loads_no_matplotlib() -> None:
    code = (
        "import sys, stackit_nb, stackit_nb.batch, stackit_nb.plots;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
