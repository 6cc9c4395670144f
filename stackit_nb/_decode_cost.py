"""How much memory turning an opened image into what is sent takes at its peak.

Pillow keeps 1 byte per pixel for modes ``1``, ``L`` and ``P``, 2 for 16-bit grey and 4 for all
others (RGB too). Conversion to 8-bit RGB or grey makes a second full-size copy for most modes,
and resizing an image with transparency a third (Pillow resizes premultiplied alpha). A file of
a few hundred KB can declare 100 megapixels, so the pixel count alone does not bound memory:
a 119-megapixel 16-bit PNG of 0.26 MB took 1.1 GB, a WebP of 5 KB 1.8 GB. The figures below are
peaks measured per pixel (``tests/test_image_memory.py`` measures them again), rounded up.
"""

from __future__ import annotations

from PIL import Image

#: Peak bytes per pixel, by the mode of the opened image (after JPEG draft decoding).
_PEAK_BYTES_PER_PIXEL = {
    "1": 3,
    "L": 1,
    "P": 6,  # + RGB copy
    "PA": 10,  # + RGBA copy, + premultiplied copy
    "LA": 9,
    "La": 9,
    "RGB": 5,
    "RGBA": 9,  # + premultiplied copy
    "RGBa": 9,
    "CMYK": 9,  # + RGB copy
    "I;16": 10,  # + 32-bit copy, + scaled copy
    "I": 9,
    "F": 9,
}
_OTHER_MODES = 10
#: libwebp decodes into buffers of its own, which Pillow then copies.
_WEBP_DECODER = 12


def peak_decode_bytes(image: Image.Image) -> int:
    """Bytes of memory that decoding and converting ``image`` (opened, not yet loaded) needs."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        mode = "PA"
    if mode.startswith("I;16"):
        mode = "I;16"
    per_pixel = _PEAK_BYTES_PER_PIXEL.get(mode, _OTHER_MODES)
    if image.format == "WEBP":
        per_pixel += _WEBP_DECODER
    return image.width * image.height * per_pixel
