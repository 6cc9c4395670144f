"""Anything image-like -> a Haystack ``ImageContent`` that a vision model can use.

One function, :func:`to_image_content`, takes a path, bytes, a PIL image or an upload entry
(an item of ipywidgets' ``FileUpload.value``) and returns an ``ImageContent`` that is upright
(EXIF orientation applied), no larger than the model can use, in a format every OpenAI-compatible
server accepts, and stripped of metadata such as GPS positions. Bad input fails fast with an
:class:`ImageError` that says what went wrong, what is accepted and what to do.

Example::

    from haystack.dataclasses import ChatMessage
    from stackit_nb.images import describe_resize, to_image_content

    image = to_image_content("photo.jpg")
    print(describe_resize(image.meta))  # 4032x3024, 3.1 MB -> 1024x768, 142 KB
    message = ChatMessage.from_user(content_parts=["What is in this picture?", image])
"""

from __future__ import annotations

import base64
import codecs
import io
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import filetype
from haystack.dataclasses import ImageContent
from PIL import Image, ImageCms, UnidentifiedImageError

from stackit_nb._decode_cost import peak_decode_bytes

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_SIDE",
    "MAX_DECODE_BYTES",
    "MAX_INPUT_BYTES",
    "MAX_INPUT_PIXELS",
    "ImageError",
    "ImageSource",
    "describe_resize",
    "format_bytes",
    "to_image_content",
]

#: Formats read from files and bytes. Others (HEIC, SVG, PDF, ICO, PSD ...) are refused with a hint.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: Longest side sent by default. Vision models work on tiles of about this size: OpenAI's high
#: detail scales to 768 px on the short side, Qwen-VL and Gemma use 896-1024 px inputs. Larger
#: images cost upload time and tokens without the model seeing more.
DEFAULT_MAX_SIDE = 1024
#: Largest file read, checked before decoding: a 12-megapixel camera JPEG is 3-6 MB.
MAX_INPUT_BYTES = 50_000_000
#: Decompression-bomb guard (our own, Pillow's global setting stays untouched): covers 108 MP
#: phone cameras.
MAX_INPUT_PIXELS = 120_000_000
#: Most memory converting one image may take. The pixel count alone does not bound it: 16-bit,
#: palette, CMYK, transparent and WebP images need more per pixel than RGB (see
#: ``stackit_nb._decode_cost``). A 120 MP RGB image fits; JPEGs are decoded at reduced size and
#: need far less. Measured, the largest accepted image of each kind peaks at 132-595 MB.
MAX_DECODE_BYTES = 600_000_000
JPEG_QUALITY = 85
#: Images with at most this many colours (diagrams, screenshots of text, line art) go out as PNG:
#: JPEG smears their sharp edges and is not even smaller for them. Scaled down, they are reduced
#: back to a palette of this many colours, which keeps the PNG small.
GRAPHIC_MAX_COLOURS = 256

ImageSource: TypeAlias = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | Mapping[str, Any]
)
Detail = Literal["auto", "high", "low"]

_ACCEPTED_WORDS = "JPEG, PNG, WebP, GIF, BMP or TIFF"
_OUTPUT_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_TRANSPOSE = {  # EXIF orientation -> the operation that makes the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(ValueError):
    """An input that cannot become an image for a model; the message says why and what to do."""


def format_bytes(n: int) -> str:
    """A byte count for people, in decimal units: ``"512 B"``, ``"142 KB"``, ``"3.1 MB"``."""
    if n < 1000:
        return f"{n} B"
    if n < 999_500:
        return f"{n / 1000:.0f} KB"
    return f"{n / 1_000_000:.1f}".removesuffix(".0") + " MB"


def describe_resize(meta: Mapping[str, Any]) -> str:
    """The size line of a converted image, e.g. ``"4032x3024, 3.1 MB -> 1024x768, 142 KB"``.

    :param meta: The ``meta`` of an ``ImageContent`` made by :func:`to_image_content`.

    Example::

        describe_resize(to_image_content("photo.jpg").meta)
    """

    def side(size: Any, n_bytes: Any) -> str:
        parts = [f"{size[0]}x{size[1]}"] if size else []
        if n_bytes is not None:
            parts.append(format_bytes(int(n_bytes)))
        return ", ".join(parts) or "?"

    before = side(meta.get("original_size"), meta.get("original_bytes"))
    return f"{before} -> {side(meta.get('sent_size'), meta.get('sent_bytes'))}"


def to_image_content(
    source: ImageSource,
    *,
    max_side: int | None = DEFAULT_MAX_SIDE,
    detail: Detail | None = None,
    format: str | None = None,
) -> ImageContent:
    """Turn a file, bytes, a PIL image or an upload entry into an ``ImageContent`` for a model.

    The image is turned upright by its EXIF orientation, scaled down to ``max_side`` (JPEGs are
    decoded at reduced size, which is several times faster than decoding all pixels), converted
    to 8-bit RGB/RGBA/grey (CMYK, 16-bit, palette; the first frame of an animation) and
    re-encoded: photos as JPEG (quality 85), images with transparency or few colours as PNG.
    Metadata (EXIF, GPS) is not sent. ``meta`` records ``original_size``, ``original_bytes``,
    ``original_format``, ``sent_size``, ``sent_bytes``, ``sent_format``, ``file_name`` and,
    where they apply, ``exif_orientation`` and ``frames``.

    :param source: A file path, the file's bytes, a ``PIL.Image.Image``, or an upload entry (a
        dict with ``content`` and ``name``, as in ipywidgets' ``FileUpload.value``).
    :param max_side: Longest side of the image sent, in pixels; ``None`` keeps the full size.
        Images are never enlarged.
    :param detail: OpenAI's detail hint, ``"auto"``, ``"high"``, ``"low"`` or ``None``.
    :param format: ``None`` chooses (JPEG for photos, PNG for transparency and graphics);
        ``"JPEG"``, ``"PNG"`` or ``"WEBP"`` forces one. JPEG puts transparent parts on white.
    :raises ImageError: For a non-image, an unaccepted format, a damaged file, a file over
        ``MAX_INPUT_BYTES`` or an image over ``MAX_INPUT_PIXELS``.

    Example::

        image = to_image_content("scan.png", max_side=1536, detail="high")
        image.meta["sent_size"]  # (1086, 1536) for a 2480x3508 A4 scan
    """
    return convert(source, max_side=max_side, detail=detail, format=format).content


@dataclass(frozen=True)
class Converted:
    """The result of :func:`convert`: what is sent, and its pixels (for thumbnails)."""

    content: ImageContent
    image: Image.Image


def convert(
    source: ImageSource,
    *,
    max_side: int | None = DEFAULT_MAX_SIDE,
    detail: Detail | None = None,
    format: str | None = None,
) -> Converted:
    """Like :func:`to_image_content`, and also return the sent pixels so that callers (the
    upload widget) can draw a thumbnail without decoding the image again."""
    out_format = _check_options(max_side, detail, format)
    data, image, name = _read_source(source)
    label = name or ("the image" if data is None else "the bytes")
    with warnings.catch_warnings():
        # Our own MAX_INPUT_PIXELS applies below; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if image is None:
            assert data is not None
            image = _open(data, label)
        source_format = "JPEG" if image.format == "MPO" else image.format
        if data is not None and image.width * image.height > MAX_INPUT_PIXELS:
            raise _too_many_pixels(label, image.size)
        orientation = _orientation(image)
        original_size = image.size if orientation < 5 else image.size[::-1]
        try:
            frames = int(getattr(image, "n_frames", 1))  # reads every frame header
        except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError) as exc:
            raise _error(
                label,
                f"has a damaged frame ({exc})",
                "Open it in an image viewer, or re-export or re-download it.",
            ) from exc
        icc = image.info.get("icc_profile")
        if max_side and source_format == "JPEG" and data is not None:  # not a caller's image
            # DCT scaling: libjpeg decodes at 1/2, 1/4 or 1/8 size, never below what we send
            image.draft(None, _fit(image.size, max_side))
        if data is not None and (needed := peak_decode_bytes(image)) > MAX_DECODE_BYTES:
            raise _error(
                label,
                f"is a {image.width}x{image.height} {image.format} image in mode {image.mode}, "
                f"which would take about {format_bytes(needed)} of memory to convert, over the "
                f"{format_bytes(MAX_DECODE_BYTES)} limit",
                "Scale it down, or save it as an 8-bit RGB PNG or a JPEG, before sending it.",
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise _error(
                label,
                f"could not be decoded ({exc}); the file is probably truncated or damaged",
                "Open it in an image viewer, or re-export or re-download it.",
            ) from exc
        pixels = _to_8bit(image, icc)
        graphic = source_format != "JPEG" and _is_graphic(pixels)
        target = _fit(pixels.size, max_side) if max_side else pixels.size
        resized = target != pixels.size
        if resized:
            # Bicubic is sharp enough for what is left after draft decoding (less than 2x);
            # reducing_gap lets large non-JPEG images shrink by whole factors first (fast).
            pixels = pixels.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
        if orientation in _TRANSPOSE:
            pixels = pixels.transpose(_TRANSPOSE[orientation])
        if icc and pixels.mode in ("RGB", "RGBA"):
            pixels = _to_srgb(pixels, icc)
        pixels = _drop_opaque_alpha(pixels)
    chosen = out_format or ("PNG" if graphic or pixels.mode in ("RGBA", "LA") else "JPEG")
    if chosen == "PNG" and graphic and resized and pixels.mode in ("RGB", "RGBA"):
        # Scaling adds in-between colours that make a PNG of line art 5x larger.
        pixels = pixels.quantize(GRAPHIC_MAX_COLOURS, method=Image.Quantize.FASTOCTREE)
    payload, pixels = _encode(pixels, chosen)
    meta: dict[str, Any] = {
        "file_name": name,
        "original_format": source_format,
        "original_size": original_size,
        "original_bytes": len(data) if data is not None else None,
        "sent_format": chosen,
        "sent_size": pixels.size,
        "sent_bytes": len(payload),
    }
    if orientation != 1:
        meta["exif_orientation"] = orientation
    if frames > 1:
        meta["frames"] = frames  # only the first one is sent
    content = ImageContent(
        base64_image=base64.b64encode(payload).decode("ascii"),
        mime_type=_OUTPUT_FORMATS[chosen],
        detail=detail,
        meta=meta,
    )
    return Converted(content=content, image=pixels)


def _limits() -> str:
    megapixels = f"{MAX_INPUT_PIXELS / 1e6:g}"
    return (
        f"Accepted: {_ACCEPTED_WORDS} files up to {format_bytes(MAX_INPUT_BYTES)} and "
        f"{megapixels} megapixels."
    )


def _error(label: str, what: str, todo: str) -> ImageError:
    return ImageError(f"{label} {what}. {todo} {_limits()}")


def _too_many_pixels(label: str, size: tuple[int, int] | None, pixels: int = 0) -> ImageError:
    count = size[0] * size[1] if size else pixels
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return _error(
        label,
        f"declares {dims}{count / 1e6:g} megapixels, over the {MAX_INPUT_PIXELS / 1e6:g} "
        "megapixel limit (a small file declaring that many pixels is a decompression bomb; "
        "a real image that large would need gigabytes of memory)",
        "Scale the image down before sending it.",
    )


def _check_options(max_side: int | None, detail: str | None, format: str | None) -> str | None:
    if max_side is not None and (isinstance(max_side, bool) or int(max_side) < 1):
        raise ValueError(f"max_side must be a positive number of pixels or None, not {max_side!r}")
    if detail not in (None, "auto", "high", "low"):
        raise ValueError(f"detail must be 'auto', 'high', 'low' or None, not {detail!r}")
    if format is None:
        return None
    wanted = "JPEG" if format.upper() == "JPG" else format.upper()
    if wanted not in _OUTPUT_FORMATS:
        raise ValueError(f"format must be None, 'JPEG', 'PNG' or 'WEBP', not {format!r}")
    return wanted


def _check_size(n: int, label: str) -> None:
    if n == 0:
        raise _error(label, "is empty (0 bytes)", "Choose the image file itself.")
    if n > MAX_INPUT_BYTES:
        raise _error(
            label,
            f"is {format_bytes(n)}, over the {format_bytes(MAX_INPUT_BYTES)} limit",
            "Scale it down or save it as a JPEG first.",
        )


def _as_bytes(content: Any, label: str) -> bytes:
    if isinstance(content, memoryview):
        _check_size(content.nbytes, label)  # before copying it
        return content.tobytes()
    if isinstance(content, bytes | bytearray):
        _check_size(len(content), label)
        return bytes(content)
    raise ImageError(f"{label}: the upload entry's content is {type(content).__name__}, not bytes.")


def _read_source(source: Any) -> tuple[bytes | None, Image.Image | None, str | None]:
    """(file bytes, image, file name): exactly one of bytes and image is set."""
    if isinstance(source, Image.Image):
        return None, source, Path(getattr(source, "filename", "") or "").name or None
    if isinstance(source, Mapping):
        name = str(source.get("name") or "") or None
        if "content" not in source:
            raise ImageError(
                "An upload entry needs 'content' (the file's bytes) and 'name', as in "
                f"ipywidgets' FileUpload.value; this one has keys {sorted(source)}."
            )
        return _as_bytes(source["content"], name or "the upload"), None, name
    if isinstance(source, bytes | bytearray | memoryview):
        return _as_bytes(source, "the bytes"), None, None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageError(
                f"Cannot read {str(path)[:200]!r}: {exc.strerror or exc}. Pass the path of an "
                "image file, or its bytes."
            ) from exc
        if not path.is_file():
            raise ImageError(f"{str(path)!r} is a folder, not an image file.")
        _check_size(size, path.name)  # before reading a byte
        return path.read_bytes(), None, path.name
    raise ImageError(
        f"Cannot make an image from a {type(source).__name__}: pass a file path, the file's "
        "bytes, a PIL image, or an upload entry (an item of FileUpload.value)."
    )


def _open(data: bytes, label: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_many_pixels(label, None, int(found.group(1)) if found else 0) from exc
    except UnidentifiedImageError as exc:
        looks_like, todo = _identify(data)
        what = f"is not an image in an accepted format ({looks_like})"
        raise _error(label, what, todo) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        what = f"could not be read as an image ({exc})"
        raise _error(label, what, "Re-export or re-download it.") from exc


def _identify(data: bytes) -> tuple[str, str]:
    """(what the bytes look like, what to do) for data that Pillow could not identify."""
    head = data[:4096]
    kind = filetype.guess(head)
    if b"<svg" in head.lower():
        return "it looks like an SVG drawing", "Export it as PNG first."
    if kind is not None and kind.extension in ("heic", "heif", "avif"):
        todo = "Convert it to JPEG first (iPhone: Settings > Camera > Formats > Most Compatible)."
    elif kind is not None and kind.extension == "pdf":
        todo = "Render its pages to images first (Haystack's PDFToImageContent does that)."
    else:
        todo = "Export it as PNG or JPEG, or choose another file."
    if kind is not None:
        return f"it looks like {kind.extension.upper()}, {kind.mime}", todo
    try:  # incremental: a character cut off at the end of ``head`` is not an error
        codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return "its first bytes match no known image format", todo
    return "it looks like text", todo


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)  # also reads the XMP orientation of PNG/WebP
    except Exception:  # damaged EXIF must not make a readable picture unusable
        return 1
    return int(value) if value in _TRANSPOSE else 1


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = max_side / max(width, height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_8bit(image: Image.Image, icc: bytes | None) -> Image.Image:
    """8-bit RGB, RGBA, L or LA: the modes that resize well and that every encoder takes."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode in ("RGBa", "La"):
        return image.convert(mode.upper())
    if mode.startswith("I;16"):
        return image.convert("I").point(lambda v: v / 257).convert("L")
    if mode in ("I", "F"):
        low, high = image.getextrema()  # single-band modes: two numbers, not per-band tuples
        assert isinstance(low, (int, float)) and isinstance(high, (int, float))
        if mode == "I" and low >= 0 and high <= 65535:  # 16-bit values in a 32-bit image
            low, high = 0, 65535
        scale = 255 / (high - low) if high > low else 1.0
        return image.point(lambda v: (v - low) * scale).convert("L")
    if mode == "CMYK" and icc:
        return _to_srgb(image, icc)
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Colours as the file's ICC profile means them (models assume sRGB), else unchanged."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "sRGB" in ImageCms.getProfileDescription(profile) and image.mode != "CMYK":
            return image
        srgb = ImageCms.createProfile("sRGB")
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, profile, srgb, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image if image.mode != "CMYK" else image.convert("RGB")
    return converted if converted is not None else image


def _is_graphic(image: Image.Image) -> bool:
    """A diagram, screenshot or line art rather than a photo: few colours, or a few colours
    covering most of it (anti-aliased text). Sampled with NEAREST, which adds no colours."""
    sample = _sample(image, 512)
    if sample.mode in ("RGB", "RGBA") and sample.getcolors(GRAPHIC_MAX_COLOURS) is not None:
        return True  # (every grey image has at most 256 levels: only the rule below tells)
    sample = _sample(sample, 128)  # shares of colours need no more pixels than this
    n_pixels = sample.width * sample.height
    counts = sorted(count for count, _ in sample.getcolors(n_pixels) or [])
    return sum(counts[-16:]) >= 0.7 * n_pixels


def _sample(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    return image.resize(_fit(image.size, side), Image.Resampling.NEAREST)


def _drop_opaque_alpha(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        return image.convert(image.mode[:-1])
    return image


def _encode(image: Image.Image, out_format: str) -> tuple[bytes, Image.Image]:
    if out_format == "JPEG" and image.mode in ("RGBA", "LA"):
        # JPEG has no transparency: show the picture on white, as a viewer would.
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    buffer = io.BytesIO()
    if out_format == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif out_format == "WEBP":
        image.save(buffer, "WEBP", quality=JPEG_QUALITY)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue(), image
