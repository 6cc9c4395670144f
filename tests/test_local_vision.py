"""What the local server measures in images, and the errors it gives for bad ones."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from stackit_nb.local.vision import ImageDecodeError, ImageFacts, inspect_data_url


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def solid(colour: str | tuple[int, ...], fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> str:
    mode = "RGBA" if isinstance(colour, tuple) and len(colour) == 4 else "RGB"
    data = encode(Image.new(mode, size, colour), fmt)
    return data_url(data, f"image/{fmt.lower()}")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_solid_red_in_every_accepted_format(fmt: str) -> None:
    facts = inspect_data_url(solid("red", fmt, (640, 480)))
    assert (facts.width, facts.height, facts.format) == (640, 480, fmt)
    assert facts.dominant_colour == "red"
    assert facts.n_bytes > 0
    assert facts.describe() == f"a 640x480 {fmt} image, mostly red, fairly bright"


def test_solid_blue_jpeg_is_blue_and_darker_than_red() -> None:
    blue = inspect_data_url(solid("blue", "JPEG"))
    red = inspect_data_url(solid("red", "JPEG"))
    assert blue.dominant_colour == "blue" and blue.mode == "RGB"
    assert blue.brightness < red.brightness
    assert blue.brightness_word() == "dark"


@pytest.mark.parametrize(
    ("colour", "word"),
    [
        ("white", "white"),
        ("black", "black"),
        ("grey", "grey"),
        ((0, 160, 0), "green"),
        ((255, 220, 0), "yellow"),
        ((255, 140, 0), "orange"),
        ((128, 0, 128), "purple"),
        ((255, 105, 180), "pink"),
        ((139, 69, 19), "brown"),
        ((0, 0, 128), "blue"),
    ],
)
def test_colour_words(colour: str | tuple[int, int, int], word: str) -> None:
    assert inspect_data_url(solid(colour)).dominant_colour == word


def test_white_and_black_brightness() -> None:
    white = inspect_data_url(solid("white", "JPEG"))
    black = inspect_data_url(solid("black", "JPEG"))
    assert white.brightness == pytest.approx(1.0, abs=0.02)
    assert black.brightness == pytest.approx(0.0, abs=0.02)
    assert (white.brightness_word(), black.brightness_word()) == ("very bright", "very dark")
    assert white.describe().endswith("mostly white, very bright")


def test_two_colours_the_larger_area_dominates() -> None:
    image = Image.new("RGB", (200, 100), "blue")
    image.paste((255, 0, 0), (0, 0, 60, 100))  # 30% red, 70% blue
    facts = inspect_data_url(data_url(encode(image, "PNG")))
    assert facts.dominant_colour == "blue"
    assert facts.secondary_colour() == "red"
    assert dict(facts.colour_shares) == pytest.approx({"blue": 0.7, "red": 0.3}, abs=0.03)
    assert "mostly blue with some red" in facts.describe()


def test_small_second_colour_is_not_mentioned() -> None:
    image = Image.new("RGB", (100, 100), "white")
    image.paste((255, 0, 0), (0, 0, 10, 10))  # a 1% red corner
    facts = inspect_data_url(data_url(encode(image, "PNG")))
    assert facts.dominant_colour == "white"
    assert facts.secondary_colour() is None
    assert "with some" not in facts.describe()


def test_transparent_png_reads_as_white_and_keeps_its_mode() -> None:
    facts = inspect_data_url(solid((255, 0, 0, 0)))
    assert facts.mode == "RGBA"
    assert facts.dominant_colour == "white"


def test_large_jpeg_keeps_its_real_size() -> None:
    image = Image.new("RGB", (4000, 3000), (0, 90, 200))
    facts = inspect_data_url(data_url(encode(image, "JPEG", quality=70), "image/jpeg"))
    assert (facts.width, facts.height, facts.dominant_colour) == (4000, 3000, "blue")


def test_base64_wrapped_in_lines_is_accepted() -> None:
    raw = base64.encodebytes(encode(Image.new("RGB", (300, 300), "green"), "PNG")).decode()
    assert "\n" in raw
    assert inspect_data_url(f"data:image/png;base64,{raw}").dominant_colour == "green"


def test_brightness_words_rise_with_brightness() -> None:
    order = ["very dark", "dark", "dim", "fairly bright", "bright", "very bright"]
    seen = [
        ImageFacts(1, 1, "PNG", "RGB", 1, "grey", b / 100).brightness_word()
        for b in range(0, 101, 5)
    ]
    assert seen[0] == "very dark" and seen[-1] == "very bright"
    assert [order.index(w) for w in seen] == sorted(order.index(w) for w in seen)
    assert set(seen) == set(order)


def test_truncated_jpeg_is_rejected_with_pillows_reason() -> None:
    data = encode(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG")
    with pytest.raises(ImageDecodeError, match=r"could not decode the image: .*truncated"):
        inspect_data_url(data_url(data[: len(data) // 2], "image/jpeg"))


def test_text_file_is_rejected_with_accepted_formats() -> None:
    url = data_url(b"hello, I am a text file\n", "image/png")
    with pytest.raises(ImageDecodeError) as caught:
        inspect_data_url(url)
    message = str(caught.value)
    assert message.startswith("could not decode the image")
    assert "accepted formats: JPEG, PNG, WebP, GIF" in message
    assert "0x" not in message  # no object addresses: the message is the same every time


def test_other_image_formats_are_rejected() -> None:
    with pytest.raises(ImageDecodeError, match="accepted formats"):
        inspect_data_url(data_url(encode(Image.new("RGB", (8, 8)), "BMP"), "image/bmp"))


def test_bogus_base64() -> None:
    with pytest.raises(ImageDecodeError, match="data URL is not valid base64"):
        inspect_data_url("data:image/png;base64,@@@not base64!!!")


def test_remote_url_is_explained() -> None:
    with pytest.raises(ImageDecodeError) as caught:
        inspect_data_url("https://example.com/cat.jpg")
    message = str(caught.value)
    assert "not a base64 data URL" in message
    assert "cannot fetch remote URLs" in message
    assert "data:image/...;base64," in message


def test_data_url_without_base64_and_empty_payload() -> None:
    with pytest.raises(ImageDecodeError, match="not base64-encoded"):
        inspect_data_url("data:image/png,rawbytes")
    with pytest.raises(ImageDecodeError, match="no image bytes"):
        inspect_data_url("data:image/png;base64,")


def test_pixel_limit() -> None:
    url = solid("red", "PNG", (300, 200))
    assert inspect_data_url(url, max_pixels=60_000).width == 300
    with pytest.raises(ImageDecodeError, match=r"too large: 300x200 .* limit is 59,999"):
        inspect_data_url(url, max_pixels=59_999)


def test_errors_are_value_errors() -> None:
    assert issubclass(ImageDecodeError, ValueError)
