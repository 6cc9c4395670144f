"""``ImageUpload``: choose images in a notebook, get ``ImageContent`` ready for a vision model.

Each uploaded file goes through :func:`stackit_nb.images.to_image_content` (upright, scaled to
what the model uses, re-encoded) and shows up as a small thumbnail with its size line, or with
the reason it was refused.

How a file gets from the browser to the kernel, and why:

- **In parts.** A Jupyter server drops a websocket message over its size limit (10 MiB by
  default) without any error, so a file travelling in one message, as ipywidgets' ``FileUpload``
  sends it, can vanish. The button here (``upload.js``) reads each file in parts of
  :data:`CHUNK_BYTES` and sends them one by one as custom widget messages with one binary buffer
  each; the kernel answers each message, which paces the sending and drives the progress line.
  The kernel puts the parts together and converts the file as soon as the last one is in.
- **Too big is refused before sending.** A file over ``MAX_INPUT_BYTES`` is refused in the
  browser, at once and unsent, with a message that says what to do; the kernel still lists it
  among the refused files (:attr:`ImageUpload.errors`), in the order the files were chosen.
- **No photo in the saved notebook.** The parts are messages, never widget state, and are
  dropped once converted: a saved notebook keeps only the thumbnails (a few KB each).
- **The kernel trusts nothing it is sent.** Parts may come in any order and twice (the first
  copy counts); missing or surplus parts, wrong sizes and malformed messages end in a refused
  file with a message, never in an exception; later parts of a file refused that way are
  ignored. Every message is answered, so the browser never waits in vain while the kernel is
  idle. ``clear()`` keeps files still arriving (a chat clears its attachments when it sends).
- **Bounded.** The parts of files still arriving take at most :data:`ARRIVING_LIMIT_BYTES`:
  a file whose sending stopped half-way (a reloaded page) is given up, with a message, when a
  newer file needs the room, instead of staying in the kernel's memory.

The messages (``seq`` is echoed in the kernel's ``{"event": "ack", "seq", "done"}``; ``done``
means the kernel is finished with that file and the gallery shows the outcome)::

    {"event": "file", "id", "name", "size", "type", "chunks"}   a file is coming
    {"event": "chunk", "id", "index"} + one buffer               part `index` (from 0) of it
    {"event": "end", "id"}                                       all sent: convert it
    {"event": "refused", "id", "name", "size"}                   refused in the browser (too big)
    {"event": "abort", "id", "reason"}                           the browser could not read it
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets
from haystack.dataclasses import ImageContent
from PIL import Image

from stackit_nb.images import (
    DEFAULT_MAX_SIDE,
    MAX_INPUT_BYTES,
    Detail,
    ImageError,
    ImageSource,
    convert,
    describe_resize,
    format_bytes,
)

__all__ = ["CHUNK_BYTES", "ImageUpload"]

#: Bytes per upload message: well under the 10 MiB a default Jupyter server lets one carry.
CHUNK_BYTES = 4 * 1024 * 1024
#: The most the kernel holds for files still arriving (their announced sizes added up): room
#: for two views of one widget sending at once. A file that stops arriving (the page was
#: reloaded or closed mid-file) is given up when a newer one needs its room.
ARRIVING_LIMIT_BYTES = 2 * MAX_INPUT_BYTES
THUMBNAIL_SIDE = 128  # thumbnails are saved in the notebook's widget state: keep them tiny
_ERROR_COLOUR = "#b00020"
#: Why a file over the limit was not sent; ``{name}`` and ``{size}`` are filled in by the
#: browser (at once) and by the kernel (for ``errors`` and the gallery), so both say the same.
_TOO_BIG = (
    "{name} is {size}, over the "
    + format_bytes(MAX_INPUT_BYTES)
    + " limit per image, so it was not sent. Scale it down or save it as a JPEG first, then "
    "choose it again (upload.add(path) from Python applies the same limit)."
)

_STOPPED = (
    "{name} stopped arriving half-way (was the page reloaded while it was being sent?). "
    "Choose it again."
)
_HELP = f"""
<details style="font-size: 12px; color: #555;">
<summary>JPEG, PNG, WebP, GIF, BMP or TIFF, up to {format_bytes(MAX_INPUT_BYTES)} per file.
</summary>
Files go to the kernel one after the other, in parts of {CHUNK_BYTES // 2**20} MiB, with a
progress line each; a larger file is refused before it is sent. While a cell runs, the kernel
receives nothing: the upload goes on when the cell ends. From Python,
<code>upload.add("photo.jpg")</code> adds files by path.<br>
Images are turned upright, scaled down to what vision models use and sent without metadata
(no GPS position).
</details>
"""


class UploadButton(anywidget.AnyWidget):  # type: ignore[misc]
    """The button of ``ImageUpload``: sends the chosen files in parts (see ``upload.js``)."""

    _esm = Path(__file__).with_name("upload.js").read_text(encoding="utf-8")
    _css = (
        ".snb-upload-host { display: contents; }"
        ".snb-upload-files { flex: 0 0 100%; order: 1; margin: 2px 4px; font-size: 12px;"
        " overflow-wrap: anywhere; }"
    )
    description = traitlets.Unicode("Upload images").tag(sync=True)
    accept = traitlets.Unicode("image/*").tag(sync=True)
    max_bytes = traitlets.Int(MAX_INPUT_BYTES).tag(sync=True)
    chunk_bytes = traitlets.Int(CHUNK_BYTES).tag(sync=True)
    too_big = traitlets.Unicode(_TOO_BIG).tag(sync=True)


@dataclass(frozen=True)
class _Item:
    """One file: converted (``content`` and ``thumbnail`` set) or refused (``error`` set)."""

    name: str
    content: ImageContent | None = None
    thumbnail: str | None = None  # data: URL of a small JPEG
    error: str | None = None


@dataclass
class _Incoming:
    """A file on its way from the browser: its parts by index until the last one is in."""

    name: str
    size: int
    type: str
    count: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    received: int = 0


class _Refused(Exception):
    """Ends one incoming file with ``str(exc)`` as its error."""


class ImageUpload(widgets.VBox):
    """An upload button for images that hands them over as ``ImageContent``.

    Files of any size up to ``MAX_INPUT_BYTES`` arrive, whatever the Jupyter server's message
    size limit: they are sent in parts. Larger files are refused in the browser, unsent.

    :param max_side: Longest side of the images sent (see ``to_image_content``).
    :param detail: OpenAI's detail hint for every image: ``"auto"``, ``"high"``, ``"low"``.
    :param format: Force ``"JPEG"``, ``"PNG"`` or ``"WEBP"``; ``None`` chooses per image.
    :param description: The upload button's label.

    Example::

        upload = ImageUpload()
        upload  # choose files, then in the next cell:
        message = ChatMessage.from_user(content_parts=["What is this?", *upload.images])
    """

    def __init__(
        self,
        *,
        max_side: int | None = DEFAULT_MAX_SIDE,
        detail: Detail | None = None,
        format: str | None = None,
        description: str = "Upload images",
        **kwargs: Any,
    ) -> None:
        button = UploadButton(description=description)
        clear = widgets.Button(description="Clear", icon="trash", disabled=True)
        status = widgets.HTML("")
        gallery = widgets.HTML("")
        help_text = widgets.HTML(_HELP)
        # wraps, so the upload button's progress lines can go under both buttons (upload.js)
        buttons = widgets.HBox([button, clear], layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__(children=[buttons, help_text, status, gallery], **kwargs)
        self.button, self.clear_button = button, clear
        self.status, self.gallery = status, gallery
        self._options: dict[str, Any] = {"max_side": max_side, "detail": detail, "format": format}
        self._items: list[_Item] = []
        self._incoming: dict[str, _Incoming] = {}
        self._callbacks: list[Callable[[list[ImageContent]], None]] = []
        button.on_msg(self._on_message)
        clear.on_click(lambda _button: self.clear())

    @property
    def images(self) -> list[ImageContent]:
        """The converted images, in upload order (refused files are left out)."""
        return [item.content for item in self._items if item.content is not None]

    @property
    def errors(self) -> list[str]:
        """Why files were refused, one message per refused file (the message names the file)."""
        return [item.error for item in self._items if item.error is not None]

    def add(self, *sources: ImageSource) -> list[ImageContent]:
        """Add images from Python: paths, bytes, PIL images or upload entries.

        Refused files show their reason in the widget, as uploads do. Returns the images that
        were added.

        Example::

            upload.add("holiday/IMG_0042.jpg", "holiday/IMG_0043.jpg")
        """
        added = [self._convert(source) for source in sources]
        self._items.extend(added)
        self._refresh()
        return [item.content for item in added if item.content is not None]

    def clear(self) -> None:
        """Forget all images and errors (a file still arriving is kept: it shows up when in)."""
        self._items = []
        self._refresh()

    def on_change(
        self, callback: Callable[[list[ImageContent]], None], *, remove: bool = False
    ) -> None:
        """Call ``callback(images)`` after every upload, ``add`` and ``clear``.

        :param callback: Receives the current ``images`` list.
        :param remove: Unregister ``callback`` instead.
        """
        if remove:
            self._callbacks.remove(callback)
        else:
            self._callbacks.append(callback)

    def __repr__(self) -> str:
        refused = f", {len(self.errors)} refused" if self.errors else ""
        return f"ImageUpload({len(self.images)} images{refused})"

    def __str__(self) -> str:
        lines = [repr(self)]
        for item in self._items:
            detail = item.error or describe_resize(item.content.meta if item.content else {})
            lines.append(f"  {item.name}: {detail}" if item.content else f"  {detail}")
        return "\n".join(lines)

    def _on_message(self, _button: Any, content: Any, buffers: Sequence[Any]) -> None:
        """One message from the button; always answered, so the browser never waits in vain."""
        if not isinstance(content, Mapping) or content.get("event") == "ack":
            return
        file_id = str(content.get("id", ""))
        incoming = self._incoming.get(file_id)
        name = incoming.name if incoming else _text(content.get("name"), "upload")
        try:
            done = self._receive(file_id, content, buffers)
        except _Refused as exc:
            self._incoming.pop(file_id, None)
            self._record(_Item(name=name, error=str(exc)))
            done = True
        except Exception as exc:  # a bug must not leave the browser waiting for an answer
            self._incoming.pop(file_id, None)
            error = f"{name} could not be received ({type(exc).__name__}: {exc}). Choose it again."
            self._record(_Item(name=name, error=error))
            done = True
        self.button.send({"event": "ack", "seq": content.get("seq"), "done": done})

    def _receive(self, file_id: str, message: Mapping[str, Any], buffers: Sequence[Any]) -> bool:
        """Handle one message; True when the kernel is finished with that file."""
        event = message.get("event")
        if event == "refused":
            size = _count(message.get("size"), "size")
            name = _text(message.get("name"), "upload")
            raise _Refused(_TOO_BIG.format(name=name, size=format_bytes(size)))
        if event == "file":
            name = _text(message.get("name"), "upload")
            size = _count(message.get("size"), "size")
            if size > MAX_INPUT_BYTES:
                raise _Refused(_TOO_BIG.format(name=name, size=format_bytes(size)))
            count = _count(message.get("chunks"), "chunks")
            if count > size:
                raise _Refused(f"{name}: {count} parts for {size} bytes. Choose it again.")
            type_ = _text(message.get("type"), "")
            self._make_room(size)
            self._incoming[file_id] = _Incoming(name=name, size=size, type=type_, count=count)
            return False
        incoming = self._incoming.get(file_id)
        if incoming is None:
            return True  # already refused (and shown), or never announced: nothing to add
        if event == "chunk":
            self._add_chunk(incoming, message.get("index"), buffers)
            return False
        if event == "abort":
            reason = _text(message.get("reason"), "unknown reason")
            raise _Refused(f"{incoming.name} could not be read by the browser ({reason}).")
        if event == "end":
            del self._incoming[file_id]
            self._record(self._convert(_assemble(incoming)))
            return True
        raise _Refused(f"{incoming.name}: unexpected upload message {str(event)[:40]!r}.")

    def _make_room(self, size: int) -> None:
        """Give up the oldest files still arriving until ``size`` more bytes fit the limit."""
        arriving = sum(incoming.size for incoming in self._incoming.values())
        for file_id, incoming in list(self._incoming.items()):
            if arriving + size <= ARRIVING_LIMIT_BYTES:
                break
            del self._incoming[file_id]
            arriving -= incoming.size
            self._record(_Item(name=incoming.name, error=_STOPPED.format(name=incoming.name)))

    def _add_chunk(self, incoming: _Incoming, index: Any, buffers: Sequence[Any]) -> None:
        if len(buffers) != 1:
            raise _Refused(f"{incoming.name}: an upload part came with {len(buffers)} buffers.")
        if not isinstance(index, int) or not 0 <= index < incoming.count:
            raise _Refused(
                f"{incoming.name}: upload part {index!r} of {incoming.count} does not exist."
            )
        if index in incoming.chunks:
            return  # sent twice: the first copy counts
        data = bytes(buffers[0])
        incoming.received += len(data)
        if incoming.received > incoming.size:
            raise _Refused(
                f"{incoming.name}: more bytes arrived than its {format_bytes(incoming.size)}. "
                "Choose it again."
            )
        incoming.chunks[index] = data

    def _record(self, item: _Item) -> None:
        self._items.append(item)
        self._refresh()

    def _convert(self, source: ImageSource) -> _Item:
        name = _name_of(source)
        try:
            converted = convert(source, **self._options)
        except ImageError as exc:
            return _Item(name=name, error=str(exc))
        except Exception as exc:  # one odd file must not break the upload of the others
            error = f"{name} could not be converted ({type(exc).__name__}: {exc})."
            return _Item(name=name, error=error)
        return _Item(name=name, content=converted.content, thumbnail=_thumbnail(converted.image))

    def _refresh(self) -> None:
        images, refused = len(self.images), len(self.errors)
        parts = [f"{images} image{'s' if images != 1 else ''} ready"] if self._items else []
        if refused:
            parts.append(f"<span style='color:{_ERROR_COLOUR}'>{refused} refused</span>")
        self.status.value = ", ".join(parts)
        self.gallery.value = _gallery_html(self._items)
        self.clear_button.disabled = not self._items
        for callback in list(self._callbacks):
            callback(self.images)


def _assemble(incoming: _Incoming) -> dict[str, Any]:
    """The upload entry for ``convert``, or ``_Refused`` when parts are missing."""
    missing = [i + 1 for i in range(incoming.count) if i not in incoming.chunks]
    if missing:
        listed = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        parts = "part" if len(missing) == 1 else "parts"
        raise _Refused(
            f"{incoming.name} arrived incomplete ({parts} {listed} of {incoming.count} missing). "
            "Choose it again."
        )
    if incoming.received != incoming.size:
        raise _Refused(
            f"{incoming.name} arrived with {incoming.received} of its {incoming.size} bytes. "
            "Choose it again."
        )
    data = b"".join(incoming.chunks[i] for i in range(incoming.count))
    incoming.chunks.clear()
    return {"name": incoming.name, "type": incoming.type, "size": len(data), "content": data}


def _text(value: Any, default: str) -> str:
    return str(value)[:300] if isinstance(value, str) and value else default


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Refused(f"An upload message has no valid {what} ({str(value)[:40]!r}).")
    return value


def _name_of(source: Any) -> str:
    if isinstance(source, Mapping):
        return str(source.get("name") or "upload")
    if isinstance(source, str | Path):
        return Path(source).name
    if isinstance(source, bytes | bytearray | memoryview):
        return "image"
    if isinstance(source, Image.Image):
        return Path(getattr(source, "filename", "") or "image").name
    return type(source).__name__


def _thumbnail(image: Image.Image) -> str:
    """A data URL of a JPEG at most THUMBNAIL_SIDE pixels wide and high (a few KB)."""
    thumb = image.convert("RGBA") if image.mode not in ("RGB", "L") else image.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    if thumb.mode == "RGBA":  # transparency shown on white, as the JPEG sent would be
        white = Image.new("RGBA", thumb.size, (255, 255, 255, 255))
        thumb = Image.alpha_composite(white, thumb).convert("RGB")
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _size_html(meta: Mapping[str, Any]) -> str:
    """The size line, e.g. ``4032x3024, 3.1 MB → 1024x768, 142 KB``, which wraps only between
    its parts, never inside one: a unit alone on the next line reads as noise."""
    sides = [side.split(", ") for side in describe_resize(meta).split(" -> ")]
    return " → ".join(
        ", ".join(
            "<span class='snb-size' style='white-space:nowrap'>"
            + html.escape(part).replace(" ", "\u00a0")
            + "</span>"
            for part in side
        )
        for side in sides
    )


def _gallery_html(items: Iterable[_Item]) -> str:
    cards = []
    for item in items:
        name = f"<b>{html.escape(item.name)}</b>"
        if item.content is not None and item.thumbnail is not None:
            body = (
                f"<img src='{item.thumbnail}' alt='{html.escape(item.name)}' "
                f"style='max-width:{THUMBNAIL_SIDE}px;max-height:{THUMBNAIL_SIDE}px;"
                "display:block;margin-bottom:4px'>"
                f"{name}<br>{_size_html(item.content.meta)}"
            )
            width = THUMBNAIL_SIDE + 80
        else:
            message = html.escape(item.error or "")
            body = f"{name}<br><span style='color:{_ERROR_COLOUR}'>{message}</span>"
            width = 360
        cards.append(
            f"<div class='stackit-nb-image' style='width:{width}px;font-size:12px;"
            f"overflow-wrap:anywhere'>{body}</div>"
        )
    if not cards:
        return ""
    return f"<div style='display:flex;flex-wrap:wrap;gap:10px'>{''.join(cards)}</div>"
