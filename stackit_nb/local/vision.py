"""What the local server "sees" in an image: a few honest pillow measurements.

The scripted engine cannot understand pictures, but it can report what it measured (size, format,
dominant colour, brightness), so replies about an image are deterministic and still change with
the image: a notebook that uploads a red photo gets an answer about a red photo.
"""

from __future__ import annotations

import base64
import binascii
import colorsys
import io
import re
import warnings
from collections import Counter
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
_ACCEPTED_WORDS = "JPEG, PNG, WebP, GIF"
_THUMB = 64  # measurements on a 64 x 64 thumbnail take a few ms whatever the image size
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)


class ImageDecodeError(ValueError):
    """An image the local server cannot read; the message says why and what to send instead."""


@dataclass(frozen=True)
class ImageFacts:
    """What was measured in one image."""

    width: int
    height: int
    format: str  # "JPEG", "PNG", "WEBP", "GIF"
    mode: str  # pillow mode of the decoded image, e.g. "RGB", "RGBA", "P"
    n_bytes: int  # size of the encoded image
    dominant_colour: str  # a plain colour word: red, orange, ..., black, white, grey
    brightness: float  # 0..1 mean perceived lightness (CIE L* / 100)
    # Colour words with their share of the picture, largest first (sums to 1).
    colour_shares: tuple[tuple[str, float], ...] = ()

    def brightness_word(self) -> str:
        """The brightness in one word: very dark, dark, dim, fairly bright, bright, very bright."""
        for limit, word in (
            (0.15, "very dark"),
            (0.35, "dark"),
            (0.5, "dim"),
            (0.7, "fairly bright"),
        ):
            if self.brightness < limit:
                return word
        return "bright" if self.brightness < 0.9 else "very bright"

    def secondary_colour(self) -> str | None:
        """A second colour covering at least a fifth of the picture, if any."""
        for word, share in self.colour_shares[1:2]:
            if share >= 0.2:
                return word
        return None

    def describe(self) -> str:
        """One sentence, e.g. ``"a 640x480 JPEG image, mostly red, fairly bright"``."""
        colours = f"mostly {self.dominant_colour}"
        if (second := self.secondary_colour()) is not None:
            colours += f" with some {second}"
        return (
            f"a {self.width}x{self.height} {self.format} image, {colours}, {self.brightness_word()}"
        )


def _colour_word(red: int, green: int, blue: int) -> str:
    """A plain colour word for one RGB pixel."""
    hue, saturation, value = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    degrees = hue * 360
    if value < 0.2:
        return "black"
    # Weakly saturated pixels read as shades of grey, whatever their hue.
    if saturation < 0.2 or (saturation < 0.3 and value < 0.4):
        return "white" if value > 0.85 else "grey" if value > 0.3 else "black"
    if 15 <= degrees < 45 and value < 0.65:
        return "brown"  # dark orange is what people call brown
    if degrees < 15 or degrees >= 345:
        if saturation < 0.5 and value > 0.7:
            return "pink"  # light, washed-out red
        if saturation < 0.8 and value < 0.7:
            return "brown"  # dull dark red
    for limit, word in (
        (15, "red"),
        (45, "orange"),
        (70, "yellow"),
        (165, "green"),
        (195, "cyan"),
        (260, "blue"),
        (320, "purple"),
        (345, "pink"),
    ):
        if degrees < limit:
            return word
    return "red"


def _lightness(red: int, green: int, blue: int) -> float:
    """Perceived lightness 0..1 (CIE L*): pure red reads brighter than pure blue, as to an eye."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    y = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    f = y ** (1 / 3) if y > 216 / 24389 else (24389 / 27 * y + 16) / 116
    return max(0.0, min(1.0, (116 * f - 16) / 100))


def _decode_payload(url: str) -> bytes:
    """The image bytes inside a ``data:`` URL."""
    if not isinstance(url, str) or not url.startswith("data:"):
        shown = url[:60] if isinstance(url, str) else type(url).__name__
        what = "a remote URL" if shown.startswith(("http://", "https://")) else "got"
        raise ImageDecodeError(
            f"image_url is not a base64 data URL ({what} {shown!r}); the local server cannot "
            "fetch remote URLs; send the image inline as data:image/...;base64,..."
        )
    match = _DATA_URL.fullmatch(url)
    if match is None or ";base64" not in match["params"].lower():
        raise ImageDecodeError(
            "image_url is a data URL but not base64-encoded; "
            "send it as data:image/<format>;base64,..."
        )
    payload = re.sub(r"\s+", "", match["data"])  # some encoders wrap base64 at 76 columns
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"data URL is not valid base64 ({exc})") from None
    if not data:
        raise ImageDecodeError("data URL carries no image bytes")
    return data


def inspect_data_url(url: str, *, max_pixels: int = 64_000_000) -> ImageFacts:
    """Decode a ``data:image/...;base64,...`` URL and measure the image.

    Raises:
        ImageDecodeError: not a base64 data URL, not valid base64, not a JPEG/PNG/WebP/GIF
            image, truncated or corrupt, or more than ``max_pixels`` pixels.
    """
    data = _decode_payload(url)
    try:
        with warnings.catch_warnings():
            # Pillow only warns below its own bomb limit; our explicit limit decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image is too large: {width}x{height} is {width * height:,} pixels, the limit "
                    f"is {max_pixels:,}; downscale it before sending"
                )
            image_format, mode = str(image.format), image.mode
            if image_format == "JPEG":
                # Decode at reduced scale: a still complete read (truncation is still caught)
                # that costs a fraction of a full-size decode.
                image.draft("RGB", (_THUMB * 2, _THUMB * 2))
            image.load()
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "could not decode the image: the bytes are not a JPEG, PNG, WebP or GIF image; "
            f"accepted formats: {_ACCEPTED_WORDS}"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageDecodeError):
            raise
        raise ImageDecodeError(
            f"could not decode the image: {exc}; accepted formats: {_ACCEPTED_WORDS}"
        ) from None
    return _measure(image, width, height, image_format, mode, len(data))


def _measure(
    image: Image.Image, width: int, height: int, image_format: str, mode: str, n_bytes: int
) -> ImageFacts:
    """Colour and brightness facts, measured on a small thumbnail."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent areas show as white in most viewers; measure what a person would see.
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        rgb = image.convert("RGB")
    rgb.thumbnail((_THUMB, _THUMB))
    colours = rgb.getcolors(maxcolors=_THUMB * _THUMB) or []
    total = sum(count for count, _ in colours) or 1
    words: Counter[str] = Counter()
    lightness = 0.0
    for count, pixel in colours:
        red, green, blue = pixel  # type: ignore[misc]  # an RGB image yields (r, g, b) tuples
        words[_colour_word(red, green, blue)] += count
        lightness += count * _lightness(red, green, blue)
    # Ties go to the word that sorts first, so the answer never depends on pixel order.
    ranked = sorted(words.items(), key=lambda item: (-item[1], item[0]))
    shares = tuple((word, round(count / total, 4)) for word, count in ranked)
    return ImageFacts(
        width=width,
        height=height,
        format=image_format,
        mode=mode,
        n_bytes=n_bytes,
        dominant_colour=shares[0][0] if shares else "grey",
        brightness=round(lightness / total, 4),
        colour_shares=shares,
    )
