"""ImageUpload driven from Python, as the browser would drive it: no browser needed.

Uploads arrive the way the kernel receives them from ``upload.js``: custom comm messages, each
part of a file as one binary buffer, through the widget's own message handler. A recording comm
captures what goes back to the frontend (the answers the browser waits for, and the widget
state a saved notebook is made of).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import ipywidgets
import pytest
from comm import DummyComm
from image_corpus import build
from ipywidgets import embed
from PIL import Image

from stackit_nb.images import MAX_INPUT_BYTES, ImageError, describe_resize, format_bytes
from stackit_nb.widgets import ImageUpload
from stackit_nb.widgets.upload import ARRIVING_LIMIT_BYTES, CHUNK_BYTES, THUMBNAIL_SIDE

WEBSOCKET_LIMIT = 10 * 1024 * 1024  # what a default Jupyter server lets one message carry


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


class Browser:
    """Sends what ``upload.js`` sends, through the handler the frontend's messages reach."""

    def __init__(self, widget: ImageUpload) -> None:
        self.widget = widget
        self.seq = 0

    def send(self, content: dict[str, Any], *buffers: bytes) -> dict[str, Any]:
        """One message; returns the kernel's answer to it."""
        self.seq += 1
        message = {
            "content": {"data": {"method": "custom", "content": {**content, "seq": self.seq}}},
            "buffers": [memoryview(b) for b in buffers],
        }
        self.widget.button._handle_msg(message)
        answer = custom_sent(self.widget.button)[-1]
        assert answer["seq"] == self.seq, "every message is answered, at once"
        return answer

    def start(self, file_id: str, name: str, data: bytes, chunk: int = CHUNK_BYTES) -> list[bytes]:
        """Announce a file; returns its parts."""
        parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        announce = {"event": "file", "id": file_id, "name": name, "size": len(data)}
        answer = self.send({**announce, "type": "image/png", "chunks": len(parts)})
        assert answer == {"event": "ack", "seq": self.seq, "done": False}
        return parts

    def chunk(self, file_id: str, index: int, part: bytes) -> dict[str, Any]:
        return self.send({"event": "chunk", "id": file_id, "index": index}, part)

    def end(self, file_id: str) -> dict[str, Any]:
        return self.send({"event": "end", "id": file_id})

    def upload(self, path: Path, name: str | None = None, chunk: int = CHUNK_BYTES) -> None:
        """A whole file, as the browser sends it: announce, parts in order, end."""
        file_id = f"id-{self.seq}"
        data = path.read_bytes()
        if len(data) > MAX_INPUT_BYTES:  # refused in the browser, before sending
            notice = {"event": "refused", "id": file_id, "name": name or path.name}
            assert self.send({**notice, "size": len(data)})["done"]
            return
        for index, part in enumerate(self.start(file_id, name or path.name, data, chunk)):
            assert self.chunk(file_id, index, part)["done"] is False
        assert self.end(file_id)["done"] is True


def custom_sent(widget: ipywidgets.Widget) -> list[dict[str, Any]]:
    """The custom messages the kernel sent to ``widget``'s frontend."""
    return [
        m["data"]["content"]
        for m in getattr(widget.comm, "sent", [])
        if m["type"] == "comm_msg" and m["data"].get("method") == "custom"
    ]


def browser_upload(widget: ImageUpload, *paths: Path, chunk: int = CHUNK_BYTES) -> None:
    """Choose ``paths`` in the browser: they are sent one after the other."""
    browser = Browser(widget)
    for path in paths:
        browser.upload(path, chunk=chunk)


def gallery_text(widget: ImageUpload) -> str:
    return html.unescape(widget.gallery.value)


def shown(widget: ImageUpload) -> str:
    """The gallery's text as a reader sees it: tags dropped, no-break spaces as spaces."""
    text = re.sub(r"<[^>]*>", "", widget.gallery.value.replace("<br>", "\n"))
    return html.unescape(text).replace("\u00a0", " ")


def size_line(meta: dict[str, Any]) -> str:
    """``describe_resize``'s line as the gallery shows it (with an arrow)."""
    return describe_resize(meta).replace(" -> ", " → ")


def saved_state(widget: ImageUpload) -> tuple[str, list[bytes]]:
    """What embedding/saving the widget would store: JSON state plus binary buffers."""
    state = embed.dependency_state([widget], drop_defaults=False)
    buffers: list[bytes] = []
    for model in state.values():
        for buffer in model.get("buffers", []):
            buffers.append(base64.b64decode(buffer["data"]))
    return json.dumps(state), buffers


def assert_not_in_state(widget: ImageUpload, data: bytes) -> None:
    """Nothing of ``data`` is in the widget state, nor in anything sent to the frontend."""
    marker = data[len(data) // 2 : len(data) // 2 + 64]
    text, buffers = saved_state(widget)
    assert all(marker not in buffer for buffer in buffers)
    assert base64.b64encode(marker).decode()[:40] not in text
    for child in [widget, *widget.children, widget.button, widget.clear_button]:
        for message in getattr(child.comm, "sent", []):
            assert all(marker not in bytes(buffer) for buffer in message["buffers"])
            assert len(json.dumps(message["data"], default=str)) < 60_000


def noise_png(size: tuple[int, int]) -> bytes:
    """A real image that barely compresses: random pixels."""
    buffer = io.BytesIO()
    picture = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    picture.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_upload_from_the_browser_converts_and_forgets_the_bytes(
    corpus: dict[str, Path],
) -> None:
    widget = ImageUpload()
    big = corpus["big_photo.jpg"]
    browser_upload(widget, big, corpus["rgba.png"], chunk=256 * 1024)

    assert [image.meta["file_name"] for image in widget.images] == ["big_photo.jpg", "rgba.png"]
    assert widget.images[0].meta["sent_size"] == (1024, 683)
    assert "3000x2000, 2.1 MB → 1024x683," in shown(widget)
    assert "2 images ready" in widget.status.value
    assert widget._incoming == {}  # the parts are gone once converted
    # Nothing of the photo is left in what a saved notebook stores; thumbnails are small.
    assert_not_in_state(widget, big.read_bytes())
    text, buffers = saved_state(widget)
    assert len(text) + sum(map(len, buffers)) < 60_000


def test_a_file_over_the_websocket_limit_arrives_in_parts(corpus: dict[str, Path]) -> None:
    data = noise_png((2100, 2100))
    assert WEBSOCKET_LIMIT < len(data) < MAX_INPUT_BYTES
    widget = ImageUpload()
    browser = Browser(widget)
    parts = browser.start("a", "noise.png", data)
    assert len(parts) == 4 and max(map(len, parts)) == CHUNK_BYTES < WEBSOCKET_LIMIT // 2
    for index, part in enumerate(parts):
        answer = browser.chunk("a", index, part)
        assert answer == {"event": "ack", "seq": browser.seq, "done": False}
        assert widget.images == [] and widget.gallery.value == ""  # nothing shown half-way
        assert_not_in_state(widget, data)
    assert browser.end("a")["done"] is True
    assert len(widget.images) == 1 and widget.errors == []
    meta = widget.images[0].meta
    assert meta["original_size"] == (2100, 2100) and meta["sent_size"] == (1024, 1024)
    line = f"noise.png\n2100x2100, {format_bytes(len(data))} → 1024x1024,"
    assert line in shown(widget)
    assert_not_in_state(widget, data)


def test_parts_out_of_order_and_twice_still_make_the_file(corpus: dict[str, Path]) -> None:
    data = corpus["big_photo.jpg"].read_bytes()
    widget = ImageUpload()
    browser = Browser(widget)
    parts = browser.start("a", "big_photo.jpg", data, chunk=300_000)
    assert len(parts) == 7
    for index in [3, 0, 6, 1, 1, 2, 5, 4, 3]:  # shuffled, 1 and 3 twice
        assert browser.chunk("a", index, parts[index])["done"] is False
    assert browser.end("a")["done"] is True
    assert widget.errors == [] and widget.images[0].meta["original_size"] == (3000, 2000)
    # the same photo sent in one part gives the same image
    assert widget.add(corpus["big_photo.jpg"])[0].base64_image == widget.images[0].base64_image


def test_a_missing_part_refuses_the_file_and_says_to_choose_it_again(
    corpus: dict[str, Path],
) -> None:
    data = corpus["big_photo.jpg"].read_bytes()
    widget = ImageUpload()
    browser = Browser(widget)
    parts = browser.start("a", "big_photo.jpg", data, chunk=500_000)
    assert len(parts) == 5
    for index in (0, 1, 3):
        browser.chunk("a", index, parts[index])
    assert browser.end("a")["done"] is True
    assert widget.images == [] and widget._incoming == {}
    assert widget.errors == [
        "big_photo.jpg arrived incomplete (parts 3, 5 of 5 missing). Choose it again."
    ]
    assert "1 refused" in widget.status.value


@pytest.mark.parametrize(
    ("message", "buffers", "error"),
    [
        ({"event": "chunk", "index": 9}, [b"x"], "upload part 9 of 2 does not exist"),
        ({"event": "chunk", "index": "0"}, [b"x"], "upload part '0' of 2 does not exist"),
        ({"event": "chunk", "index": 0}, [], "an upload part came with 0 buffers"),
        ({"event": "chunk", "index": 0}, [b"x" * 120_000], "more bytes arrived than its 113 KB"),
        ({"event": "dance"}, [], "unexpected upload message 'dance'"),
    ],
)
def test_a_bad_message_refuses_that_file_only(
    corpus: dict[str, Path], message: dict[str, Any], buffers: list[bytes], error: str
) -> None:
    data = corpus["photo.jpg"].read_bytes()
    assert 60_000 < len(data) < 120_000  # two parts of 60 000 bytes
    widget = ImageUpload()
    browser = Browser(widget)
    browser.start("a", "photo.jpg", data, chunk=60_000)
    other = browser.start("b", "grey.jpg", corpus["grey.jpg"].read_bytes())
    assert browser.send({**message, "id": "a"}, *buffers)["done"] is True
    assert len(widget.errors) == 1 and widget.errors[0].startswith(f"photo.jpg: {error}")
    assert "a" not in widget._incoming  # its parts are dropped at once
    assert browser.chunk("a", 0, data[:60_000])["done"] is True  # the rest of it is ignored
    browser.chunk("b", 0, other[0])
    browser.end("b")
    assert len(widget.images) == 1 and len(widget.errors) == 1


def test_a_file_over_the_limit_is_refused_without_being_kept(corpus: dict[str, Path]) -> None:
    huge = corpus["huge.jpg"]
    size = huge.stat().st_size
    assert size > MAX_INPUT_BYTES
    widget = ImageUpload()
    browser = Browser(widget)
    # The browser refuses it and only says so: name and size, no bytes.
    answer = browser.send({"event": "refused", "id": "a", "name": "huge.jpg", "size": size})
    assert answer["done"] is True
    # A frontend that announces it anyway is refused before any part is taken.
    announce = {"event": "file", "id": "b", "name": "huge.jpg", "size": size, "chunks": 15}
    assert browser.send({**announce, "type": "image/jpeg"})["done"] is True
    assert widget._incoming == {}
    assert browser.chunk("b", 0, huge.read_bytes()[:CHUNK_BYTES])["done"] is True  # ignored
    assert widget._incoming == {} and widget.images == []
    expected = (
        "huge.jpg is 60 MB, over the 50 MB limit per image, so it was not sent. Scale it down "
        "or save it as a JPEG first, then choose it again (upload.add(path) from Python "
        "applies the same limit)."
    )
    assert widget.errors == [expected, expected]
    assert "huge.jpg" in gallery_text(widget) and expected in gallery_text(widget)
    assert "0 images ready" in widget.status.value and "2 refused" in widget.status.value
    # The browser shows the same words at once, from the template the widget gives it.
    template = widget.button.get_state()["too_big"]
    assert template.format(name="huge.jpg", size=format_bytes(size)) == expected
    assert widget.button.get_state()["max_bytes"] == MAX_INPUT_BYTES
    assert widget.button.get_state()["chunk_bytes"] == CHUNK_BYTES
    assert_not_in_state(widget, huge.read_bytes())


def test_several_files_at_once_keep_their_order(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    names = ["photo.jpg", "huge.jpg", "text.png", "rgba.png", "animated.gif"]
    browser_upload(widget, *(corpus[n] for n in names), chunk=50_000)
    assert str(widget).splitlines()[0] == "ImageUpload(3 images, 2 refused)"
    assert [item.name for item in widget._items] == names
    assert [image.meta["file_name"] for image in widget.images] == [
        "photo.jpg",
        "rgba.png",
        "animated.gif",
    ]
    assert "huge.jpg is 60 MB" in widget.errors[0]
    assert "text.png is not an image" in widget.errors[1]


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
        assert size_line(image.meta) in shown(widget)
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


def test_an_empty_file_and_a_file_the_browser_cannot_read(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    browser = Browser(widget)
    assert browser.start("a", "empty.png", b"") == []
    assert browser.end("a")["done"] is True
    parts = browser.start("b", "photo.jpg", corpus["photo.jpg"].read_bytes(), chunk=10_000)
    browser.chunk("b", 0, parts[0])
    reason = "NotReadableError: The file could not be read"
    assert browser.send({"event": "abort", "id": "b", "reason": reason})["done"] is True
    assert "empty.png is empty (0 bytes)" in widget.errors[0]
    assert widget.errors[1] == f"photo.jpg could not be read by the browser ({reason})."
    assert widget._incoming == {}


def test_markup_in_file_names_is_escaped(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    Browser(widget).upload(corpus["text.png"], name="<img src=x onerror=alert(1)>.png")
    assert "<img src=x" not in widget.gallery.value
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in widget.gallery.value


def test_clear_keeps_a_file_still_arriving(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    widget.add(corpus["grey.jpg"])
    browser = Browser(widget)
    parts = browser.start("a", "photo.jpg", corpus["photo.jpg"].read_bytes(), chunk=10_000)
    browser.chunk("a", 0, parts[0])
    widget.clear()  # e.g. a chat sending its attachments while this one is on its way
    assert widget.images == [] and widget.gallery.value == ""
    for index, part in enumerate(parts[1:], start=1):
        assert browser.chunk("a", index, part)["done"] is False
    assert browser.end("a")["done"] is True
    assert [image.meta["file_name"] for image in widget.images] == ["photo.jpg"]


def test_a_file_that_stops_arriving_is_given_up_when_its_room_is_needed(
    corpus: dict[str, Path],
) -> None:
    widget = ImageUpload()
    browser = Browser(widget)
    big = MAX_INPUT_BYTES  # the largest file the browser sends
    announce = {"event": "file", "type": "image/jpeg", "chunks": -(-big // CHUNK_BYTES)}
    for file_id in ["reloaded", "other view"]:  # the page was reloaded after the first part
        browser.send({**announce, "id": file_id, "name": f"{file_id}.jpg", "size": big})
        assert browser.chunk(file_id, 0, bytes(CHUNK_BYTES))["done"] is False
    assert 2 * big <= ARRIVING_LIMIT_BYTES  # both fit: nothing given up yet
    assert widget.errors == []

    browser.upload(corpus["photo.jpg"])  # needs room: the oldest file still arriving goes
    assert widget.errors == [
        "reloaded.jpg stopped arriving half-way (was the page reloaded while it was being "
        "sent?). Choose it again."
    ]
    assert "reloaded.jpg stopped arriving" in gallery_text(widget)
    assert [image.meta["file_name"] for image in widget.images] == ["photo.jpg"]
    assert browser.chunk("reloaded", 1, bytes(CHUNK_BYTES))["done"] is True  # forgotten
    assert browser.chunk("other view", 1, bytes(CHUNK_BYTES))["done"] is False  # still wanted


def test_help_says_how_files_travel_and_what_is_refused() -> None:
    widget = ImageUpload()
    help_text = html.unescape(widget.children[1].value)
    assert "up to 50 MB per file" in help_text and "in parts of 4 MiB" in help_text
    assert "refused before it is sent" in help_text and "upload.add(" in help_text
    assert "websocket" not in help_text.lower()  # nothing to configure any more
    assert widget.button.get_state()["accept"] == "image/*"


def test_add_from_python_takes_upload_entries(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    data = corpus["orientation_6.jpg"].read_bytes()
    entry = {"name": "orientation_6.jpg", "type": "image/jpeg", "content": memoryview(data)}
    widget.add(corpus["photo.jpg"].read_bytes(), entry)
    assert len(widget.images) == 2 and widget.images[1].meta["exif_orientation"] == 6
    assert "orientation_6.jpg" in gallery_text(widget)
    assert size_line(widget.images[0].meta) in shown(widget)


def test_the_size_line_wraps_only_between_its_parts(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    (image,) = widget.add(corpus["big_photo.jpg"])
    nowrap = r"<span class='snb-size' style='white-space:nowrap'>([^<]*)</span>"
    sent = format_bytes(image.meta["sent_bytes"]).replace(" ", "\u00a0")
    # a number and its unit never part: "KB" cannot start a line on its own
    assert re.findall(nowrap, widget.gallery.value) == [
        "3000x2000",
        "2.1\u00a0MB",
        "1024x683",
        sent,
    ]


def test_clear_and_on_change(corpus: dict[str, Path]) -> None:
    widget = ImageUpload()
    seen: list[int] = []

    def callback(images: list[Any]) -> None:
        seen.append(len(images))

    widget.on_change(callback)
    assert widget.clear_button.disabled
    browser_upload(widget, corpus["photo.jpg"])
    browser_upload(widget, corpus["grey.jpg"], corpus["text.png"])
    assert seen == [1, 2, 2] and not widget.clear_button.disabled
    widget.clear_button.click()
    assert widget.images == [] and widget.errors == [] and seen == [1, 2, 2, 0]
    assert widget.gallery.value == "" and widget.status.value == ""
    assert widget.clear_button.disabled
    widget.on_change(callback, remove=True)
    widget.add(corpus["photo.jpg"])
    assert seen == [1, 2, 2, 0]


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
