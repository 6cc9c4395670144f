"""Converting an image never takes more than MAX_DECODE_BYTES of memory, whatever the file
declares: small files of 16-bit, transparent, CMYK or WebP images used to take 1-1.8 GB."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from stackit_nb._decode_cost import peak_decode_bytes
from stackit_nb.images import MAX_DECODE_BYTES, MAX_INPUT_PIXELS, ImageError, to_image_content

# (mode, format, save options); solid colours, so files stay small whatever the pixel count
KINDS = {
    "i16.png": ("I;16", "PNG", {}),
    "rgba.png": ("RGBA", "PNG", {}),
    "rgb.webp": ("RGB", "WEBP", {"lossless": True}),
    "cmyk.tif": ("CMYK", "TIFF", {"compression": "tiff_deflate"}),
}

MEASURE = """
import json, resource, sys
from stackit_nb.images import to_image_content
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = to_image_content(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak": (after - before) * 1024, "sent": image.meta["sent_size"]}))
"""


def write(path: Path, side: int) -> Path:
    mode, kind, options = KINDS[path.name.split("-", 1)[1]]
    Image.new(mode, (side, side), 7 if mode == "I;16" else None).save(path, kind, **options)
    return path


def largest_side(tmp_path: Path, name: str) -> int:
    """The side of the largest square image of this kind that is accepted."""
    with Image.open(write(tmp_path / f"probe-{name}", 8)) as probe:
        per_pixel = peak_decode_bytes(probe) / 64
    return math.isqrt(int(min(MAX_INPUT_PIXELS, MAX_DECODE_BYTES / per_pixel)))


@pytest.mark.parametrize("name", list(KINDS))
def test_largest_accepted_image_stays_within_the_memory_limit(tmp_path: Path, name: str) -> None:
    side = largest_side(tmp_path, name)
    path = write(tmp_path / f"edge-{name}", side)
    # a fresh process: its peak resident memory is this conversion's alone
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True
    )
    measured = json.loads(run.stdout)
    assert measured["sent"] == [1024, 1024]
    assert measured["peak"] <= MAX_DECODE_BYTES, (name, side, measured["peak"] / 1e6)


@pytest.mark.parametrize("name", list(KINDS))
def test_one_step_larger_is_refused_before_decoding(tmp_path: Path, name: str) -> None:
    side = largest_side(tmp_path, name) + 16
    path = write(tmp_path / f"over-{name}", side)
    with pytest.raises(ImageError) as caught:
        to_image_content(path)
    message = str(caught.value)
    assert f"{side}x{side}" in message and "of memory to convert" in message
    assert "600 MB limit" in message and "Scale it down" in message


def test_the_reported_16_bit_bomb_is_refused(tmp_path: Path) -> None:
    """119 megapixels of 16-bit grey in a 0.26 MB PNG took 1.1 GB to convert."""
    path = write(tmp_path / "bomb-i16.png", 10_900)
    assert path.stat().st_size < 400_000
    with pytest.raises(ImageError, match="of memory to convert"):
        to_image_content(path)
