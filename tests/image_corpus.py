"""A corpus of images (good, odd and hostile) generated with pillow, for the image tests and bench.

Nothing is downloaded: every file is drawn here, so the tests run offline and the corpus covers
exactly the cases ``stackit_nb.images`` promises to handle.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

# Upright test card: one solid colour per quadrant, so orientation survives JPEG and scaling.
QUADRANTS = {
    "top_left": (220, 30, 30),  # red
    "top_right": (30, 180, 40),  # green
    "bottom_left": (30, 60, 220),  # blue
    "bottom_right": (240, 220, 30),  # yellow
}
# EXIF orientation n -> how to store an upright picture so that a viewer applying n shows it
# upright (the inverse of the display transform of the EXIF specification).
STORE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def camera_like(size: tuple[int, int], *, noise: float = 9.0) -> Image.Image:
    """An RGB picture with what makes camera JPEGs large: gradients, shapes, texture, noise."""
    width, height = size
    gradient = Image.linear_gradient("L")  # 256x256, dark at the top
    red = gradient.resize(size)
    green = gradient.rotate(90).resize(size)
    blue = Image.radial_gradient("L").resize(size)
    picture = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(picture)
    step = max(8, min(size) // 9)
    for i in range(24):  # soft-edged "objects"
        x = (i * 7919 * step) % width
        y = (i * 104729 * step) % height
        colour = ((i * 53) % 256, (i * 97) % 256, (i * 151) % 256)
        draw.ellipse((x, y, x + step * (1 + i % 4), y + step * (1 + i % 3)), fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(max(1, min(size) // 400)))
    # Fine texture (foliage, fabric): blurred noise, then sensor noise, different per channel.
    texture = Image.effect_noise(size, 40).filter(ImageFilter.GaussianBlur(1.2))
    channels = []
    for channel in picture.split():
        channel = ImageChops.add(channel, texture, scale=1.0, offset=-128)
        channels.append(ImageChops.add(channel, Image.effect_noise(size, noise), offset=-128))
    return Image.merge("RGB", channels)


def quadrant_card(size: tuple[int, int] = (80, 60)) -> Image.Image:
    """Upright picture with a known colour in each quadrant (see ``QUADRANTS``)."""
    width, height = size
    card = Image.new("RGB", size)
    draw = ImageDraw.Draw(card)
    half_w, half_h = width // 2, height // 2
    draw.rectangle((0, 0, half_w - 1, half_h - 1), fill=QUADRANTS["top_left"])
    draw.rectangle((half_w, 0, width - 1, half_h - 1), fill=QUADRANTS["top_right"])
    draw.rectangle((0, half_h, half_w - 1, height - 1), fill=QUADRANTS["bottom_left"])
    draw.rectangle((half_w, half_h, width - 1, height - 1), fill=QUADRANTS["bottom_right"])
    return card


def save_oriented(upright: Image.Image, orientation: int, path: Path, **save: object) -> Path:
    """Save ``upright`` as a JPEG that is upright only once EXIF ``orientation`` is applied."""
    op = STORE_FOR_ORIENTATION[orientation]
    stored = upright if op is None else upright.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Example Camera Co."  # Make
    exif[0x0110] = "Model 12"  # Model
    stored.save(path, "JPEG", exif=exif, **save)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG of ``width`` x ``height`` black pixels: a few KB on disk, huge in memory.

    Written chunk by chunk so that making it never needs the pixels in memory either.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
    path.write_bytes(png + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def build(folder: Path) -> dict[str, Path]:
    """Write the whole corpus into ``folder``; returns name -> path."""
    files: dict[str, Path] = {}

    def add(name: str, image: Image.Image, *args: object, **kwargs: object) -> None:
        files[name] = folder / name
        image.save(files[name], *args, **kwargs)

    photo = camera_like((640, 480))
    add("photo.jpg", photo, quality=90)
    add("big_photo.jpg", camera_like((3000, 2000)), quality=90)
    add("photo.webp", photo, quality=85)
    add("photo.bmp", photo)
    add("photo.tiff", photo)
    add("photo.png", photo)
    add("grey.jpg", photo.convert("L"), quality=90)
    add("grey_photo.png", photo.convert("L"))
    add("cmyk.jpg", quadrant_card((96, 64)).convert("CMYK"), quality=95)

    transparent = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    ImageDraw.Draw(transparent).ellipse((50, 50, 350, 250), fill=(200, 40, 40, 255))
    add("rgba.png", transparent)
    add("rgba.webp", transparent, lossless=True)
    opaque = photo.convert("RGBA")  # an alpha channel that is opaque everywhere
    add("opaque_rgba.png", opaque)

    line_art = Image.new("RGB", (1600, 1200), "white")
    draw = ImageDraw.Draw(line_art)
    for i in range(0, 1600, 40):
        draw.line((i, 0, 1600 - i, 1200), fill="black", width=3)
    draw.rectangle((200, 200, 700, 500), outline=(0, 0, 200), width=8)
    add("line_art.png", line_art)

    grey16 = Image.linear_gradient("L").rotate(90).resize((512, 64)).convert("I")
    add("grey16.png", grey16.point(lambda v: v * 257).convert("I;16"))

    palette = Image.new("P", (120, 90), 0)
    palette.putpalette([255, 255, 255, 220, 30, 30, 30, 60, 220] + [0] * 759)
    ImageDraw.Draw(palette).rectangle((30, 20, 90, 70), fill=1)
    add("palette_transparent.png", palette, transparency=0)
    add("palette.gif", palette.copy())

    frames = [Image.new("RGB", (60, 40), c) for c in ((220, 30, 30), (30, 180, 40), (30, 60, 220))]
    files["animated.gif"] = folder / "animated.gif"
    frames[0].save(files["animated.gif"], save_all=True, append_images=frames[1:], duration=100)

    for n in range(1, 9):
        name = f"orientation_{n}.jpg"
        files[name] = save_oriented(quadrant_card(), n, folder / name, quality=95)

    data = files["photo.jpg"].read_bytes()
    files["truncated.jpg"] = folder / "truncated.jpg"
    files["truncated.jpg"].write_bytes(data[: len(data) // 2])
    files["bomb.png"] = bomb_png(folder / "bomb.png", 20_000, 20_000)  # 400 megapixels
    # Over our 120 MP limit but under Pillow's own error threshold (179 MP): our check must act.
    files["bomb_121mp.png"] = bomb_png(folder / "bomb_121mp.png", 11_000, 11_000)
    files["text.png"] = folder / "text.png"
    files["text.png"].write_text("This is a shopping list, not a picture.\nmilk\neggs\n")
    files["document.pdf"] = folder / "document.pdf"
    files["document.pdf"].write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n")
    add("icon.ico", quadrant_card((32, 32)))
    files["drawing.svg"] = folder / "drawing.svg"
    files["drawing.svg"].write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>')
    files["empty.jpg"] = folder / "empty.jpg"
    files["empty.jpg"].write_bytes(b"")
    # 60 MB: a real JPEG at the start, then a sparse tail (costs no disk space).
    files["huge.jpg"] = folder / "huge.jpg"
    with files["huge.jpg"].open("wb") as handle:
        handle.write(data)
        handle.truncate(60_000_000)
    return files
