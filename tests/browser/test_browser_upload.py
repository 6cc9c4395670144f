"""ImageUpload in JupyterLab: files chosen in the browser reach the kernel and the model.

The lab runs with Jupyter's default websocket message limit (10 MiB, over which a message is
dropped without an error): a 15 MB photo must still arrive, in parts, and a 60 MB one must be
refused in the browser before a byte of it is sent.
"""

from __future__ import annotations

import ast
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import WebSocket

from stackit_nb.images import MAX_INPUT_BYTES
from stackit_nb.widgets.upload import CHUNK_BYTES

from .lab_page import BrowserPage, NotebookPage, write_notebook

pytestmark = pytest.mark.browser

DEFAULT_WEBSOCKET_LIMIT = 10 * 1024 * 1024  # tornado's websocket_max_message_size
WIDGET = "from stackit_nb.widgets import ImageUpload\n\nupload = ImageUpload()\nupload"
CELLS = [
    WIDGET,
    "image = upload.images[0]\nprint(type(image).__name__, image.mime_type)\nprint(image.meta)",
    "from haystack.dataclasses import ChatMessage\n"
    "from stackit_nb import STACKITChatGenerator\n\n"
    'vision = STACKITChatGenerator(model="google/gemma-3-27b-it")\n'
    'question = ChatMessage.from_user(content_parts=["What colour dominates this image?", image])\n'
    'print(vision.run([question])["replies"][0].text)',
]
BIG_CELLS = [WIDGET, "print(upload)\nprint(upload.errors)"]
# Keeps every text the upload's progress lines show (in window.snbUploadLines).
RECORD_LINES = """output => {
  window.snbUploadLines = [];
  new MutationObserver(() => {
    for (const line of output.querySelectorAll(".snb-upload-file")) {
      if (window.snbUploadLines.at(-1) !== line.textContent) {
        window.snbUploadLines.push(line.textContent);
      }
    }
  }).observe(output, { subtree: true, childList: true, characterData: true });
}"""


class SentFrames:
    """The size of every websocket frame the page sends from now on (the kernel's channels)."""

    def __init__(self, page: BrowserPage) -> None:
        self.page = page.page
        self.sizes: list[int] = []
        self.page.on("websocket", self._watch)

    def _watch(self, socket: WebSocket) -> None:
        if "/channels" in socket.url:
            socket.on("framesent", lambda payload: self.sizes.append(len(payload)))

    def stop(self) -> None:
        self.page.remove_listener("websocket", self._watch)


@pytest.fixture
def sent_frames(browser_page: BrowserPage) -> Iterator[SentFrames]:
    frames = SentFrames(browser_page)
    try:
        yield frames
    finally:
        frames.stop()


def choose(notebook: NotebookPage, *files: Path) -> float:
    """Choose ``files`` with the upload button's file chooser; returns when that happened."""
    button = notebook.output(0).locator("button.snb-upload")
    with notebook.page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(list(files))
    return time.monotonic()


def noise(path: Path, size: tuple[int, int]) -> Path:
    """A real image that barely compresses: random pixels."""
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(path, compress_level=1)
    return path


def test_image_upload_reaches_the_kernel_and_the_vision_model(
    browser_page: BrowserPage, tmp_path: Path
) -> None:
    photo = tmp_path / "red.jpg"
    # larger than the 1024 px the widget sends, so the size line shows a real conversion
    Image.new("RGB", (2000, 1500), (200, 20, 20)).save(photo, quality=90)
    write_notebook(browser_page.lab.root / "browser_upload.ipynb", CELLS)
    notebook = browser_page.open("browser_upload.ipynb")
    notebook.run_cell(0)
    choose(notebook, photo)

    card = notebook.output(0).locator(".stackit-nb-image")
    thumbnail = card.locator("img")
    thumbnail.wait_for(timeout=20_000)
    assert thumbnail.get_attribute("src", timeout=1000).startswith("data:image/jpeg;base64,")
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") == 128
    assert re.search(r"red\.jpg\s+2000x1500, \d+\sKB → 1024x768, \d+\sKB", card.inner_text())
    # the size line wraps between its parts only: a number and its unit stay on one line
    parts = card.locator(".snb-size")
    assert parts.count() == 4
    assert parts.evaluate_all("spans => spans.map(s => s.getClientRects().length)") == [1] * 4
    assert "1 image ready" in notebook.output(0).inner_text()
    assert notebook.output(0).locator(".snb-upload-file").count() == 0  # no line left over

    notebook.run_cell(1)
    kind, meta = notebook.output(1).inner_text().strip().split("\n", 1)
    assert kind == "ImageContent image/jpeg"
    meta = ast.literal_eval(meta)
    assert meta["file_name"] == "red.jpg"
    assert (meta["original_size"], meta["sent_size"]) == ((2000, 1500), (1024, 768))

    notebook.run_cell(2)
    answer = notebook.output(2).inner_text()
    assert "red" in answer.lower(), answer
    notebook.output(0).scroll_into_view_if_needed()


def test_the_lab_keeps_the_default_websocket_limit(browser_page: BrowserPage) -> None:
    """What the next two tests prove holds on a default server: nothing here raises the limit."""
    process = browser_page.lab.process
    assert process is not None
    assert "websocket_max_message_size" not in " ".join(map(str, process.args))
    configs = (browser_page.lab.home / "config").glob("**/*")
    assert not any("websocket" in p.read_text(errors="ignore") for p in configs if p.is_file())


def test_a_15_mb_photo_arrives_in_parts_on_a_default_server(
    browser_page: BrowserPage, sent_frames: SentFrames, tmp_path: Path
) -> None:
    photo = noise(tmp_path / "noise.png", (2240, 2240))
    size = photo.stat().st_size
    assert DEFAULT_WEBSOCKET_LIMIT < size < MAX_INPUT_BYTES
    write_notebook(browser_page.lab.root / "browser_upload_15mb.ipynb", BIG_CELLS)
    notebook = browser_page.open("browser_upload_15mb.ipynb")
    notebook.run_cell(0)
    notebook.output(0).evaluate(RECORD_LINES)
    before = len(sent_frames.sizes)
    chosen = choose(notebook, photo)

    card = notebook.output(0).locator(".stackit-nb-image")
    card.locator("img").wait_for(timeout=60_000)
    elapsed = time.monotonic() - chosen
    assert re.search(r"noise\.png\s+2240x2240, 15\.1\sMB → 1024x1024, \d+\sKB", card.inner_text())
    assert "1 image ready" in notebook.output(0).inner_text()
    assert notebook.output(0).locator(".snb-upload-file").count() == 0

    # It went in parts, each far below the limit that would have dropped the whole file.
    frames = sent_frames.sizes[before:]
    parts = [n for n in frames if n > 100_000]  # the rest are short JSON messages
    assert len(parts) == -(-size // CHUNK_BYTES), frames
    assert max(frames) < CHUNK_BYTES + 4096 < DEFAULT_WEBSOCKET_LIMIT
    assert sum(frames) > size
    # The widget showed how far it got, part by part, then that it converts.
    lines = notebook.page.evaluate("window.snbUploadLines")
    sending = [line for line in lines if line.startswith("Sending noise.png: ")]
    for sent in ("0 B", "4.2 MB", "8.4 MB", "12.6 MB"):
        assert f"Sending noise.png: {sent} of 15.1 MB" in sending, lines
    assert lines[-1] == "Converting noise.png ...", lines

    notebook.run_cell(1)
    text = notebook.output(1).inner_text()
    assert re.search(r"noise\.png: 2240x2240, 15\.1 MB -> 1024x1024", text), text
    assert "[]" in text  # no errors
    print(f"15 MB photo: received and converted {elapsed:.1f} s after choosing it")


def test_a_60_mb_photo_is_refused_in_the_browser_unsent(
    browser_page: BrowserPage, sent_frames: SentFrames, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.bmp"
    Image.frombytes("RGB", (5000, 4000), os.urandom(60_000_000)).save(huge)
    assert huge.stat().st_size > MAX_INPUT_BYTES
    write_notebook(browser_page.lab.root / "browser_upload_60mb.ipynb", BIG_CELLS)
    notebook = browser_page.open("browser_upload_60mb.ipynb")
    notebook.run_cell(0)
    notebook.output(0).evaluate(RECORD_LINES)
    before = len(sent_frames.sizes)
    chosen = choose(notebook, huge)

    refusal = "huge.bmp is 60 MB, over the 50 MB limit per image, so it was not sent."
    card = notebook.output(0).locator(".stackit-nb-image", has_text=refusal)
    card.wait_for(timeout=20_000)
    elapsed = time.monotonic() - chosen
    text = card.inner_text()
    assert "Scale it down or save it as a JPEG" in text and "upload.add(path)" in text
    assert "0 images ready, 1 refused" in notebook.output(0).inner_text()
    assert notebook.output(0).locator(".snb-upload-file").count() == 0
    assert sum(sent_frames.sizes[before:]) < 10_000  # a short note, not the photo
    # The browser said so itself first, in the same words, before the kernel had a say.
    lines = notebook.page.evaluate("window.snbUploadLines")
    assert lines and lines[0] == card.locator("span").inner_text(), lines

    # The kernel is alive and answers, and knows why.
    notebook.run_cell(1, timeout=30)
    answer = notebook.output(1).inner_text()
    assert answer.startswith("ImageUpload(0 images, 1 refused)"), answer
    assert refusal in answer
    assert not notebook.errors()
    print(f"60 MB photo: refused {elapsed:.2f} s after choosing it")


def test_a_file_chosen_while_a_cell_runs_waits_and_then_arrives(
    browser_page: BrowserPage, tmp_path: Path
) -> None:
    photo = tmp_path / "blue.jpg"
    Image.new("RGB", (1600, 1200), (20, 40, 200)).save(photo, quality=90)
    cells = [WIDGET, "import time\n\ntime.sleep(12)", "print(upload)"]
    write_notebook(browser_page.lab.root / "browser_upload_busy.ipynb", cells)
    notebook = browser_page.open("browser_upload_busy.ipynb")
    notebook.run_cell(0)
    notebook.run_cell(1, wait=False)
    choose(notebook, photo)

    # The kernel cannot take the file yet: the widget says why nothing moves.
    line = notebook.output(0).locator(".snb-upload-file")
    line.filter(has_text="Waiting for the kernel: a running cell holds it up").wait_for(
        timeout=15_000
    )
    assert "blue.jpg" in line.inner_text()
    # When the cell ends, the upload goes on by itself.
    card = notebook.output(0).locator(".stackit-nb-image", has_text="blue.jpg")
    card.locator("img").wait_for(timeout=30_000)
    assert line.count() == 0
    notebook.run_cell(2)
    assert "blue.jpg: 1600x1200" in notebook.output(2).inner_text()
