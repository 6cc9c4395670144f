"""to_image_content over a generated corpus: every format and mode it promises, and bad input."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from haystack.dataclasses import ChatMessage, ImageContent
from image_corpus import QUADRANTS, STORE_FOR_ORIENTATION, build, camera_like, quadrant_card
from PIL import Image, ImageCms, ImageOps

from stackit_nb.generator import STACKITChatGenerator
from stackit_nb.images import (
    DEFAULT_MAX_SIDE,
    MAX_INPUT_PIXELS,
    ImageError,
    describe_resize,
    format_bytes,
    to_image_content,
)
from stackit_nb.local import LocalSTACKIT

ACCEPTED_WORDS = "JPEG, PNG, WebP, GIF, BMP or TIFF"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("images"))


def decoded(image: ImageContent) -> Image.Image:
    picture = Image.open(io.BytesIO(base64.b64decode(image.base64_image)))
    picture.load()
    return picture


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def quadrant_pixels(picture: Image.Image) -> dict[str, tuple[int, ...]]:
    rgb = picture.convert("RGB")
    w, h = rgb.size
    return {
        "top_left": rgb.getpixel((w // 4, h // 4)),
        "top_right": rgb.getpixel((3 * w // 4, h // 4)),
        "bottom_left": rgb.getpixel((w // 4, 3 * h // 4)),
        "bottom_right": rgb.getpixel((3 * w // 4, 3 * h // 4)),
    }


def test_photo_jpeg_meta_records_what_was_sent(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["photo.jpg"], detail="high")
    picture = decoded(image)
    assert image.mime_type == "image/jpeg" and picture.format == "JPEG"
    assert image.detail == "high"
    assert image.meta == {
        "file_name": "photo.jpg",
        "original_format": "JPEG",
        "original_size": (640, 480),
        "original_bytes": corpus["photo.jpg"].stat().st_size,
        "sent_format": "JPEG",
        "sent_size": (640, 480),
        "sent_bytes": len(base64.b64decode(image.base64_image)),
    }
    assert picture.size == (640, 480)


def test_large_jpeg_is_scaled_to_max_side_keeping_aspect(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["big_photo.jpg"])
    assert DEFAULT_MAX_SIDE == 1024
    assert image.meta["original_size"] == (3000, 2000)
    assert image.meta["sent_size"] == (1024, 683) == decoded(image).size
    assert image.meta["sent_bytes"] < image.meta["original_bytes"] / 5


@pytest.mark.parametrize(("max_side", "expected"), [(None, (3000, 2000)), (300, (300, 200))])
def test_max_side_none_keeps_size_and_small_values_shrink(
    corpus: dict[str, Path], max_side: int | None, expected: tuple[int, int]
) -> None:
    assert decoded(to_image_content(corpus["big_photo.jpg"], max_side=max_side)).size == expected


def test_small_images_are_never_enlarged(corpus: dict[str, Path]) -> None:
    assert decoded(to_image_content(corpus["orientation_1.jpg"], max_side=4000)).size == (80, 60)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(corpus: dict[str, Path], orientation: int) -> None:
    path = corpus[f"orientation_{orientation}.jpg"]
    stored = Image.open(path)
    # The corpus itself is right: stored turned or mirrored (except 1), and Pillow's own
    # exif_transpose shows it upright.
    as_stored = quadrant_pixels(stored)
    upright_as_stored = all(near(as_stored[c], QUADRANTS[c]) for c in QUADRANTS)
    assert upright_as_stored == (orientation == 1)
    for corner, pixel in quadrant_pixels(ImageOps.exif_transpose(stored)).items():
        assert near(pixel, QUADRANTS[corner]), (orientation, corner)

    image = to_image_content(path)
    picture = decoded(image)
    assert picture.size == (80, 60) == image.meta["original_size"]
    for corner, pixel in quadrant_pixels(picture).items():
        assert near(pixel, QUADRANTS[corner]), (orientation, corner, pixel)
    assert image.meta.get("exif_orientation") == (None if orientation == 1 else orientation)


def test_orientation_and_downscale_together(tmp_path: Path) -> None:
    upright = quadrant_card((1600, 1200))
    stored = upright.transpose(STORE_FOR_ORIENTATION[6])
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait_sensor.jpg"
    stored.save(path, exif=exif, quality=90)
    assert Image.open(path).size == (1200, 1600)  # stored sideways

    picture = decoded(to_image_content(path, max_side=400))
    assert picture.size == (400, 300)
    for corner, pixel in quadrant_pixels(picture).items():
        assert near(pixel, QUADRANTS[corner]), corner


def test_metadata_is_not_sent(corpus: dict[str, Path]) -> None:
    assert Image.open(corpus["orientation_6.jpg"]).getexif()  # the original has EXIF
    assert not decoded(to_image_content(corpus["orientation_6.jpg"])).getexif()


def test_transparency_is_kept_as_png(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["rgba.png"])
    picture = decoded(image)
    assert image.mime_type == "image/png" and picture.mode == "RGBA"
    assert picture.getpixel((0, 0))[3] == 0  # transparent corner
    assert picture.getpixel((200, 150)) == (200, 40, 40, 255)  # opaque centre


def test_webp_with_alpha_becomes_png(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["rgba.webp"])
    assert image.meta["original_format"] == "WEBP" and image.mime_type == "image/png"
    assert decoded(image).getpixel((0, 0))[3] == 0


def test_an_alpha_channel_that_is_opaque_everywhere_is_a_photo(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["opaque_rgba.png"])
    assert image.mime_type == "image/jpeg" and decoded(image).mode == "RGB"


def test_line_art_stays_png_and_small(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["line_art.png"])
    picture = decoded(image)
    assert image.mime_type == "image/png" and picture.size == (1024, 768)
    assert picture.mode == "P"  # back to a palette after scaling
    assert image.meta["sent_bytes"] < 2 * image.meta["original_bytes"]


@pytest.mark.parametrize("name", ["photo.webp", "photo.bmp", "photo.tiff", "photo.png"])
def test_photos_in_other_formats_become_jpeg(corpus: dict[str, Path], name: str) -> None:
    image = to_image_content(corpus[name])
    assert image.mime_type == "image/jpeg" and decoded(image).size == (640, 480)
    assert image.meta["original_format"] == name.split(".")[1].upper()


@pytest.mark.parametrize("name", ["grey.jpg", "grey_photo.png"])
def test_grey_photos_stay_grey_jpeg(corpus: dict[str, Path], name: str) -> None:
    image = to_image_content(corpus[name])
    assert image.mime_type == "image/jpeg" and decoded(image).mode == "L"


def test_cmyk_jpeg_becomes_rgb(corpus: dict[str, Path]) -> None:
    assert Image.open(corpus["cmyk.jpg"]).mode == "CMYK"
    picture = decoded(to_image_content(corpus["cmyk.jpg"]))
    assert picture.mode == "RGB"
    for corner, pixel in quadrant_pixels(picture).items():
        assert near(pixel, QUADRANTS[corner], tolerance=60), (corner, pixel)


def test_16_bit_grey_is_scaled_not_clipped(corpus: dict[str, Path]) -> None:
    assert Image.open(corpus["grey16.png"]).mode.startswith("I")
    picture = decoded(to_image_content(corpus["grey16.png"]))
    assert picture.mode == "L"
    left, middle, right = (picture.getpixel((x, 32)) for x in (2, 256, 509))
    assert left < 20 and 100 < middle < 156 and right > 235


def test_palette_with_transparency_keeps_it(corpus: dict[str, Path]) -> None:
    picture = decoded(to_image_content(corpus["palette_transparent.png"]))
    assert picture.mode == "RGBA"
    assert picture.getpixel((2, 2))[3] == 0
    assert picture.getpixel((60, 45)) == (220, 30, 30, 255)


def test_palette_gif_becomes_png(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["palette.gif"])
    assert image.mime_type == "image/png"
    assert decoded(image).convert("RGB").getpixel((60, 45)) == (220, 30, 30)


def test_animated_gif_sends_its_first_frame(corpus: dict[str, Path]) -> None:
    image = to_image_content(corpus["animated.gif"])
    assert image.meta["frames"] == 3
    assert near(decoded(image).convert("RGB").getpixel((30, 20)), (220, 30, 30), 5)


@pytest.mark.parametrize(("forced", "mime"), [("PNG", "png"), ("webp", "webp"), ("jpg", "jpeg")])
def test_format_can_be_forced(corpus: dict[str, Path], forced: str, mime: str) -> None:
    image = to_image_content(corpus["photo.jpg"], format=forced)
    assert image.mime_type == f"image/{mime}"
    assert decoded(image).format == mime.upper()


def test_forced_jpeg_puts_transparency_on_white(corpus: dict[str, Path]) -> None:
    picture = decoded(to_image_content(corpus["rgba.png"], format="JPEG"))
    assert picture.mode == "RGB" and near(picture.getpixel((0, 0)), (255, 255, 255), 3)


def test_every_kind_of_source(corpus: dict[str, Path]) -> None:
    data = corpus["photo.jpg"].read_bytes()
    entry = {"name": "x.jpg", "type": "image/jpeg", "size": len(data), "content": memoryview(data)}
    sources: list[object] = [
        corpus["photo.jpg"],
        str(corpus["photo.jpg"]),
        data,
        bytearray(data),
        memoryview(data),
        entry,
    ]
    for source in sources:
        assert decoded(to_image_content(source)).size == (640, 480), type(source)
    assert to_image_content(entry).meta["file_name"] == "x.jpg"
    assert to_image_content(data).meta["file_name"] is None


def test_pil_images_in_memory(corpus: dict[str, Path]) -> None:
    made = to_image_content(Image.new("RGB", (2048, 1024), (10, 200, 10)))
    assert made.meta["original_bytes"] is None and made.meta["original_format"] is None
    assert made.meta["sent_size"] == (1024, 512)
    opened = Image.open(corpus["big_photo.jpg"])
    assert to_image_content(opened).meta["original_format"] == "JPEG"
    assert opened.size == (3000, 2000)  # the caller's image was not draft-decoded in place


def test_embedded_srgb_profile(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "profiled.jpg"
    camera_like((320, 240)).save(path, icc_profile=srgb)
    assert decoded(to_image_content(path)).size == (320, 240)


def assert_helpful(error: ImageError, *words: str) -> None:
    message = str(error)
    for word in (*words, ACCEPTED_WORDS, "50 MB", "120 megapixels"):
        assert word in message, (word, message)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("truncated.jpg", ("truncated.jpg", "truncated or damaged")),
        ("text.png", ("text.png", "looks like text")),
        ("document.pdf", ("PDF", "PDFToImageContent")),
        ("icon.ico", ("ICO",)),
        ("drawing.svg", ("SVG",)),
        ("empty.jpg", ("empty",)),
    ],
)
def test_bad_files_get_a_helpful_image_error(
    corpus: dict[str, Path], name: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(ImageError) as caught:
        to_image_content(corpus[name])
    assert_helpful(caught.value, *words)


@pytest.mark.parametrize(("name", "megapixels"), [("bomb.png", "400"), ("bomb_121mp.png", "121")])
def test_decompression_bombs_are_refused_quickly(
    corpus: dict[str, Path], name: str, megapixels: str
) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    assert corpus[name].stat().st_size < 100_000
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as seen, pytest.raises(ImageError) as caught:
        warnings.simplefilter("always")
        to_image_content(corpus[name])
    assert time.perf_counter() - start < 1
    assert_helpful(caught.value, name, f"{megapixels} megapixels", "decompression bomb")
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert limit == Image.MAX_IMAGE_PIXELS  # the global guard was not changed
    assert MAX_INPUT_PIXELS == 120_000_000


def test_a_60_mb_file_is_refused_before_it_is_read(corpus: dict[str, Path]) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        to_image_content(corpus["huge.jpg"])
    assert time.perf_counter() - start < 0.5
    assert_helpful(caught.value, "huge.jpg", "60 MB")
    entry = {"name": "huge.jpg", "content": memoryview(bytearray(60_000_000))}
    with pytest.raises(ImageError, match="60 MB, over the 50 MB limit"):
        to_image_content(entry)


def test_wrong_kinds_of_source() -> None:
    with pytest.raises(ImageError, match=r"(?i)no such file"):
        to_image_content("/nowhere/photo.jpg")
    with pytest.raises(ImageError, match="folder"):
        to_image_content(Path(__file__).parent)
    with pytest.raises(ImageError, match="pass a file path"):
        to_image_content(42)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="'content'"):
        to_image_content({"name": "a.png"})


def test_bad_options_are_value_errors(corpus: dict[str, Path]) -> None:
    for options in ({"detail": "ultra"}, {"format": "HEIC"}, {"max_side": 0}):
        with pytest.raises(ValueError):
            to_image_content(corpus["photo.jpg"], **options)  # type: ignore[arg-type]


def test_describe_resize_and_format_bytes() -> None:
    meta = {
        "original_size": (4032, 3024),
        "original_bytes": 3_100_000,
        "sent_size": (1024, 768),
        "sent_bytes": 142_300,
    }
    assert describe_resize(meta) == "4032x3024, 3.1 MB -> 1024x768, 142 KB"
    assert describe_resize({**meta, "original_bytes": None}) == "4032x3024 -> 1024x768, 142 KB"
    assert [format_bytes(n) for n in (512, 1500, 999_499, 50_000_000)] == [
        "512 B",
        "2 KB",
        "999 KB",
        "50 MB",
    ]


def test_image_content_round_trips_and_reaches_a_vision_model(server: LocalSTACKIT) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1500), (210, 25, 30)).save(buffer, "PNG")
    image = to_image_content(buffer.getvalue())
    assert ImageContent.from_dict(image.to_dict()).meta == image.meta
    message = ChatMessage.from_user(content_parts=["What does the image show?", image])
    reply = STACKITChatGenerator(model="google/gemma-3-27b-it").run([message])["replies"][0]
    assert "red" in (reply.text or "").lower()
    part = server.requests[-1]["json"]["messages"][0]["content"][1]
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


def test_import_stackit_nb_loads_neither_pillow_nor_ipywidgets() -> None:
    code = "import sys, stackit_nb; print('PIL' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
