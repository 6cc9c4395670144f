"""Benchmark: ``to_image_content`` vs Haystack's ``ImageContent.from_file_path(size=...)``.

On a 12-megapixel camera-like JPEG (gradients, shapes, texture and sensor noise, EXIF
orientation 6, quality 92, so a realistic several-MB file), both in the same run:

- time ratio: median time of ``to_image_content(path)`` / median time of
  ``ImageContent.from_file_path(path, size=(1024, 1024))``; goal <= 0.5x (JPEG draft decoding);
- payload ratio: bytes sent by ``to_image_content`` / bytes of the unresized file; goal <= 0.1x.

Run: ``python bench/bench_images.py [--repeat 9]``. Prints a table of ratios measured in this
run and writes ``bench/results/images.json``. A missed goal is reported as MISS.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import Row, interleave, median, report
from haystack.dataclasses import ImageContent
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the image corpus generator shared with the tests

from image_corpus import camera_like, quadrant_card, save_oriented  # noqa: E402

from stackit_nb.images import to_image_content  # noqa: E402

SIZE = (4032, 3024)  # 12.2 megapixels, the sensor of most phone cameras
TIME_GOAL = 0.5
PAYLOAD_GOAL = 0.1


def decode(data: bytes, draft: tuple[int, int] | None) -> Any:
    """Decode a JPEG, at full size or with draft (DCT-scaled) decoding to at least ``draft``."""
    image = Image.open(io.BytesIO(data))
    if draft is not None:
        image.draft(None, draft)
    image.load()
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per contender")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "camera.jpg"
        print(f"Generating a {SIZE[0]}x{SIZE[1]} camera-like JPEG ...", flush=True)
        upright = camera_like(SIZE)
        upright.paste(quadrant_card((400, 300)), (0, 0))  # a marker: which way is up
        save_oriented(upright, 6, path, quality=92)  # stored sideways, as a phone stores it
        data = path.read_bytes()

        def ours() -> ImageContent:
            return to_image_content(path)

        def baseline() -> ImageContent:
            return ImageContent.from_file_path(path, size=(1024, 1024))

        contenders = {"to_image_content": ours, "haystack_from_file_path": baseline}
        samples = interleave(contenders, args.repeat)
        # Where the time goes: decoding alone, all pixels vs draft (as to_image_content does).
        stored_target = (768, 1024)  # the stored (sideways) picture scaled to 1024
        decoders = {
            "decode_all_pixels": lambda: decode(data, None),
            "decode_draft": lambda: decode(data, stored_target),
        }
        samples |= interleave(decoders, args.repeat)
        sent, theirs = ours(), baseline()
        draft_size = decode(data, stored_target).size

    file_bytes = len(data)
    theirs_payload = base64.b64decode(theirs.base64_image)
    theirs_size = Image.open(io.BytesIO(theirs_payload)).size
    sent_bytes = int(sent.meta["sent_bytes"])
    rows = [
        Row.ratio_of(
            "time of to_image_content",
            samples["to_image_content"],
            "Haystack from_file_path(size=(1024, 1024))",
            samples["haystack_from_file_path"],
            at_most=TIME_GOAL,
        ),
        Row.absolute(
            "payload / unresized file",
            sent_bytes / file_bytes,
            at_most=PAYLOAD_GOAL,
            baseline=f"{file_bytes / 1e6:.2f} MB file",
            ratio=sent_bytes / file_bytes,
        ),
        Row.absolute(
            "baseline payload / file (info)",
            len(theirs_payload) / file_bytes,
            baseline=f"{len(theirs_payload) / 1000:.0f} KB sent",
        ),
        Row.ratio_of(
            "decoding alone: draft (info)",
            samples["decode_draft"],
            "all pixels",
            samples["decode_all_pixels"],
        ),
    ]
    sideways = (theirs_size[0] > theirs_size[1]) != (SIZE[0] > SIZE[1])
    notes = [
        f"input: {SIZE[0]}x{SIZE[1]} camera-like JPEG, quality 92, {file_bytes / 1e6:.2f} MB, "
        f"EXIF orientation 6; {args.repeat} interleaved runs each after a warm-up, medians",
        f"to_image_content sends {sent.meta['sent_size'][0]}x{sent.meta['sent_size'][1]} "
        f"JPEG q85, {sent_bytes / 1000:.0f} KB; the baseline sends {theirs_size[0]}x"
        f"{theirs_size[1]} JPEG q75, {len(theirs_payload) / 1000:.0f} KB"
        + (" (sideways: it ignores the EXIF orientation)" if sideways else ""),
        f"draft decoding yields {draft_size[0]}x{draft_size[1]} (1/{SIZE[0] // draft_size[1]} "
        "scale); it cannot skip the "
        "entropy decoding of every byte of the file, which dominates for a noisy photo",
    ]
    extra = {
        "input": {"size": list(SIZE), "bytes": file_bytes, "quality": 92, "exif_orientation": 6},
        "time_ratio": median(samples["to_image_content"])
        / median(samples["haystack_from_file_path"]),
        "payload_ratio": sent_bytes / file_bytes,
        "goals": {"time_ratio_at_most": TIME_GOAL, "payload_ratio_at_most": PAYLOAD_GOAL},
    }
    report("images", rows, samples, notes=notes, extra=extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
