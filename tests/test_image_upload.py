"""ImageUpload driven from Python, as the browser would drive it: no browser needed.

Uploads arrive the way the kernel receives them from the frontend (a comm ``update`` message with
the file bytes as binary buffers), and a recording comm captures what goes back to the frontend,
which is what a saved notebook's widget state is made of.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import inspect
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import ipywidgets
import pytest
import tornado.websocket
from comm import DummyComm
from image_corpus import build
from ipywidgets import embed
from PIL import Image

from stackit_nb.images import ImageError, describe_resize
from stackit_nb.widgets import ImageUpload
from stackit_nb.widgets.upload import RAISE_CAP_COMMAND, THUMBNAIL_SIDE, WEBSOCKET_CAP_BYTES


class RecordingComm(DummyComm):
    """A comm that keeps what the kernel would send to the frontend."""

    sent: list[dict[str, Any]]

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any
    ) -> None:
        self.__dict__.setdefault("sent", []).append(
            {"type": msg_type, "data": data, "buffers": list(buffers or [])}
        )


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("upload"))


def entry(path: Path, data: bytes | None = None, name: str | None = None) -> dict[str, Any]:
    """An item of FileUpload.value as ipywidgets 8 builds it from the browser's message."""
    content = path.read_bytes() if data is None else data
    return {
        "name": name or path.name,
        "type": "image/jpeg",
        "size": len(content),
        "content": memoryview(content),
        "last_modified": dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
    }


def browser_upload(widget: ImageUpload, *paths: Path) -> None:
    """Deliver files exactly as the frontend does: one comm update, bytes as buffers."""
    files = [p.read_bytes() for p in paths]
    value = [
        {"name": p.name, "type": "image/*", "size": len(d), "last_modified": 1_777_000_000_000}
        for p, d in zip(paths, files, strict=True)
    ]
    message = {
        "content": {
            "data": {
                "method": "update",
                "state": {"value": value},
                "buffer_paths": [["value", i, "content"] for i in range(len(files))],
            }
        },
        "buffers": [memoryview(d) for d in files],
    }
    widget.button._handle_msg(message)


def gallery_text(widget: ImageUpload) -> str:
    return html.unescape(widget.gallery.value)


def saved_state(widget: ImageUpload) -> tuple[str, list[bytes]]:
    """What embedding/saving the widget would store: JSON state plus binary buffers."""
    state = embed.dependency_state([widget], drop_defaults=False)
    buffers: list[bytes] = []
    for model in state.values():
        for buffer in model.get("buffers", []):
            buffers.append(base64.b64decode(buffer["data"]))
    return json.dumps(state), buffers


def test_upload_from_the_browser_converts_and_forgets_the_bytes(
    corpus: dict[str, Path],
) -> None:
    widget = ImageUpload()
    big = corpus["big_photo.jpg"]
    browser_upload(widget, big, corpus["rgba.png"])

    assert [image.meta["file_name"] for image in widget.images] == ["big_photo.jpg", "rgba.png"]
    assert widget.images[0].meta["sent_size"] == (1024, 683)
    assert "3000x2000, 2.1 MB -> 1024x683," in gallery_text(widget)
    assert "2 images ready" in widget.status.value
    # The kernel told the frontend to drop the file: its last update sets value to [].
    updates = [m["data"] for m in widget.button.comm.sent if m["type"] == "comm_msg"]
    assert updates[-1]["method"] == "update" and updates[-1]["state"] == {"value": []}
    assert widget.button.value == () and widget.button.get_state()["value"] == []
    # Nothing of the photo is left in what a saved notebook stores; thumbnails are small.
    text, buffers = saved_state(widget)
    marker = big.read_bytes()[5000:5064]
    assert all(marker not in buffer for buffer in buffers)
    assert base64.b64encode(marker).decode()[:40] not in text
    assert len(text) + sum(map(len, buffers)) < 40_000


def test_setting_value_from_python_works_too(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    widget.button.value = (entry(corpus["photo.jpg"]), entry(corpus["orientation_6.jpg"]))
    assert len(widget.images) == 2 and widget.button.value == ()
    assert "photo.jpg" in gallery_text(widget)
    assert describe_resize(widget.images[0].meta) in gallery_text(widget)
    assert widget.images[1].meta["exif_orientation"] == 6


def test_each_file_gets_a_thumbnail_and_size_line(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    names = ["big_photo.jpg", "rgba.png", "line_art.png", "animated.gif"]
    browser_upload(widget, *(corpus[n] for n in names))
    text = gallery_text(widget)
    thumbnails = [part.split("'")[0] for part in text.split("src='data:image/jpeg;base64,")[1:]]
    assert len(thumbnails) == 4
    for data in thumbnails:
        picture = Image.open(io.BytesIO(base64.b64decode(data)))
        assert max(picture.size) <= THUMBNAIL_SIDE
        assert len(data) < 10_000
    for image in widget.images:
        assert describe_resize(image.meta) in text
    assert (
        str(widget).splitlines()[1] == f"  big_photo.jpg: {describe_resize(widget.images[0].meta)}"
    )


def test_refused_files_show_their_reason_in_the_widget(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    browser_upload(widget, corpus["text.png"], corpus["photo.jpg"], corpus["bomb.png"])
    assert len(widget.images) == 1
    assert len(widget.errors) == 2
    assert "text.png is not an image" in widget.errors[0]
    assert "decompression bomb" in widget.errors[1]
    text = gallery_text(widget)
    assert "#b00020" in widget.gallery.value  # in red
    assert "looks like text" in text and "JPEG, PNG, WebP, GIF, BMP or TIFF" in text
    assert "1 image ready" in widget.status.value and "2 refused" in widget.status.value
    assert repr(widget) == "ImageUpload(1 images, 2 refused)"
    assert widget._repr_mimebundle_()["text/plain"] == repr(widget)


def test_markup_in_file_names_is_escaped(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    widget.button.value = (entry(corpus["text.png"], name="<img src=x onerror=alert(1)>.png"),)
    assert "<img src=x" not in widget.gallery.value
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in widget.gallery.value


def test_files_over_the_websocket_cap_get_an_explanation(corpus: dict[str, Path]) -> None:
    big = Image.linear_gradient("L").resize((2100, 2100)).convert("RGB")
    buffer = io.BytesIO()
    big.save(buffer, "BMP")
    data = buffer.getvalue()
    assert len(data) > WEBSOCKET_CAP_BYTES
    widget = ImageUpload()
    widget.button.value = (entry(Path("scan.bmp"), data),)
    assert len(widget.images) == 1  # it arrived, so it is converted
    text = gallery_text(widget)
    assert "10 MiB" in text and "websocket_max_message_size" in text
    huge = corpus["huge.jpg"].read_bytes()
    widget.button.value = (entry(corpus["huge.jpg"], huge),)
    assert "60 MB, over the 50 MB limit" in widget.errors[-1]


def test_help_names_the_cap_and_a_working_way_to_raise_it() -> None:
    widget = ImageUpload()
    help_text = html.unescape(widget.children[1].value)
    assert "10 MiB" in help_text and RAISE_CAP_COMMAND in help_text
    assert "upload.add(" in help_text
    # The setting name is tornado's, and the command line parses to an int jupyter_server uses.
    assert "websocket_max_message_size" in inspect.getsource(tornado.websocket)
    from jupyter_server.serverapp import ServerApp

    argument = RAISE_CAP_COMMAND.split(" ", 2)[2].replace('"', "")
    app = ServerApp()
    with warnings.catch_warnings():  # traitlets prefers key=value, which would give a str
        warnings.simplefilter("ignore", DeprecationWarning)
        app.parse_command_line([argument])
    assert app.tornado_settings == {"websocket_max_message_size": 104857600}


def test_clear_and_on_change(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    seen: list[int] = []

    def callback(images: list[Any]) -> None:
        seen.append(len(images))

    widget.on_change(callback)
    assert widget.clear_button.disabled
    browser_upload(widget, corpus["photo.jpg"])
    browser_upload(widget, corpus["grey.jpg"], corpus["text.png"])
    assert seen == [1, 2] and not widget.clear_button.disabled
    widget.clear_button.click()
    assert widget.images == [] and widget.errors == [] and seen == [1, 2, 0]
    assert widget.gallery.value == "" and widget.status.value == ""
    assert widget.clear_button.disabled
    widget.on_change(callback, remove=True)
    widget.add(corpus["photo.jpg"])
    assert seen == [1, 2, 0]


def test_add_from_python_and_options(corpus: dict[str, Path]) -> None:
    widget = ImageUpload(max_side=256, detail="low", format="PNG")
    added = widget.add(corpus["big_photo.jpg"], corpus["huge.jpg"], "/nowhere.png")
    assert len(added) == 1 and added[0].meta["sent_size"] == (256, 171)
    assert added[0].mime_type == "image/png" and added[0].detail == "low"
    assert len(widget.errors) == 2 and "60 MB" in widget.errors[0]
    assert "Cannot read" in widget.errors[1]


def test_lazy_export_and_errors_are_value_errors() -> None:
    import stackit_nb.widgets

    assert stackit_nb.widgets.ImageUpload is ImageUpload
    assert issubclass(ImageError, ValueError)
    assert isinstance(ImageUpload(), ipywidgets.VBox)
