"""``ImageUpload``: choose images in a notebook, get ``ImageContent`` ready for a vision model.

Each uploaded file goes through :func:`stackit_nb.images.to_image_content` (upright, scaled to
what the model uses, re-encoded) and shows up as a small thumbnail with its size line, or with
the reason it was refused. The uploaded bytes are dropped from the upload button as soon as they
are converted, so a saved notebook keeps only the thumbnails (a few KB each), not the photos.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
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

__all__ = ["RAISE_CAP_COMMAND", "RAISE_CAP_CONFIG", "WEBSOCKET_CAP_BYTES", "ImageUpload"]

#: Tornado's default ``websocket_max_message_size``: the largest widget message (all files
#: chosen at once, together) that a default Jupyter server passes on to the kernel.
WEBSOCKET_CAP_BYTES = 10 * 1024 * 1024
#: How to start Jupyter with a 100 MiB cap instead.
RAISE_CAP_COMMAND = (
    "jupyter lab --ServerApp.tornado_settings=\"{'websocket_max_message_size': 104857600}\""
)
#: The same as a line for ``jupyter_server_config.py``.
RAISE_CAP_CONFIG = "c.ServerApp.tornado_settings = {'websocket_max_message_size': 104857600}"
THUMBNAIL_SIDE = 128  # thumbnails are saved in the notebook's widget state: keep them tiny
_ERROR_COLOUR = "#b00020"
_NOTE_COLOUR = "#8a5a00"

_HELP = f"""
<details style="font-size: 12px; color: #555;">
<summary>JPEG, PNG, WebP, GIF, BMP or TIFF; up to {format_bytes(MAX_INPUT_BYTES)} per file,
and 10 MiB per upload on a default Jupyter server. Nothing appears? Read this.</summary>
Files travel from the browser to the kernel in one websocket message, and a default Jupyter
server drops messages over 10 MiB <i>without any error</i>: all files chosen at once count
together. Choose fewer or smaller files, add a file from Python with
<code>upload.add("photo.jpg")</code>, or start Jupyter with a larger cap (here 100 MiB):<br>
<code>{html.escape(RAISE_CAP_COMMAND)}</code><br>
or put <code>{html.escape(RAISE_CAP_CONFIG)}</code> in <code>jupyter_server_config.py</code>.<br>
Images are turned upright, scaled down to what vision models use and sent without metadata
(no GPS position).
</details>
"""


@dataclass(frozen=True)
class _Item:
    """One file: converted (``content`` and ``thumbnail`` set) or refused (``error`` set)."""

    name: str
    content: ImageContent | None = None
    thumbnail: str | None = None  # data: URL of a small JPEG
    error: str | None = None
    note: str | None = None


class ImageUpload(widgets.VBox):
    """An upload button for images that hands them over as ``ImageContent``.

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
        button = widgets.FileUpload(accept="image/*", multiple=True, description=description)
        clear = widgets.Button(description="Clear", icon="trash", disabled=True)
        status = widgets.HTML("")
        gallery = widgets.HTML("")
        help_text = widgets.HTML(_HELP)
        super().__init__(
            children=[widgets.HBox([button, clear]), help_text, status, gallery], **kwargs
        )
        self.button, self.clear_button = button, clear
        self.status, self.gallery = status, gallery
        self._options: dict[str, Any] = {"max_side": max_side, "detail": detail, "format": format}
        self._items: list[_Item] = []
        self._callbacks: list[Callable[[list[ImageContent]], None]] = []
        button.observe(self._on_upload, names="value")
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

        Handy for files too large for a browser upload. Refused files show their reason in the
        widget, as uploads do. Returns the images that were added.

        Example::

            upload.add("holiday/IMG_0042.jpg", "holiday/IMG_0043.jpg")
        """
        added = [self._convert(source) for source in sources]
        self._items.extend(added)
        self._refresh()
        return [item.content for item in added if item.content is not None]

    def clear(self) -> None:
        """Forget all images and errors."""
        self._items = []
        self.button.value = ()
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

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        entries = change["new"]
        if not entries:
            return  # our own reset below, or a clear
        self.status.value = f"<i>Converting {len(entries)} file(s) ...</i>"
        try:
            self._items.extend(self._convert(entry) for entry in entries)
        finally:
            # The raw bytes must not stay in the widget: the notebook would save them.
            self.button.value = ()
            self._refresh()

    def _convert(self, source: ImageSource) -> _Item:
        name, size = _name_and_size(source)
        note = None
        if size is not None and WEBSOCKET_CAP_BYTES < size <= MAX_INPUT_BYTES:
            note = (
                f"{format_bytes(size)}: over the 10 MiB that a default Jupyter server lets an "
                "upload carry. It arrived, so this server's cap is raised (or this is not "
                "Jupyter); elsewhere such an upload is dropped without an error. To raise the "
                f"cap, start Jupyter with {RAISE_CAP_COMMAND}"
            )
        try:
            converted = convert(source, **self._options)
        except ImageError as exc:
            return _Item(name=name, error=str(exc), note=note)
        except Exception as exc:  # one odd file must not break the upload of the others
            error = f"{name} could not be converted ({type(exc).__name__}: {exc})."
            return _Item(name=name, error=error, note=note)
        return _Item(
            name=name,
            content=converted.content,
            thumbnail=_thumbnail(converted.image),
            note=note,
        )

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


def _name_and_size(source: Any) -> tuple[str, int | None]:
    if isinstance(source, Mapping):
        content = source.get("content")
        size = content.nbytes if isinstance(content, memoryview) else source.get("size")
        return str(source.get("name") or "upload"), int(size) if size is not None else None
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            return path.name, path.stat().st_size
        except OSError:
            return path.name, None  # to_image_content says what is wrong with it
    if isinstance(source, bytes | bytearray | memoryview):
        return "image", memoryview(source).nbytes
    if isinstance(source, Image.Image):
        return Path(getattr(source, "filename", "") or "image").name, None
    return type(source).__name__, None


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


def _gallery_html(items: Iterable[_Item]) -> str:
    cards = []
    for item in items:
        name = f"<b>{html.escape(item.name)}</b>"
        if item.content is not None and item.thumbnail is not None:
            body = (
                f"<img src='{item.thumbnail}' alt='{html.escape(item.name)}' "
                f"style='max-width:{THUMBNAIL_SIDE}px;max-height:{THUMBNAIL_SIDE}px;"
                "display:block;margin-bottom:4px'>"
                f"{name}<br>{html.escape(describe_resize(item.content.meta))}"
            )
            width = THUMBNAIL_SIDE + 80
        else:
            message = html.escape(item.error or "")
            body = f"{name}<br><span style='color:{_ERROR_COLOUR}'>{message}</span>"
            width = 360
        if item.note:
            body += f"<br><span style='color:{_NOTE_COLOUR}'>{html.escape(item.note)}</span>"
        cards.append(
            f"<div class='stackit-nb-image' style='width:{width}px;font-size:12px;"
            f"overflow-wrap:anywhere'>{body}</div>"
        )
    if not cards:
        return ""
    return f"<div style='display:flex;flex-wrap:wrap;gap:10px'>{''.join(cards)}</div>"
