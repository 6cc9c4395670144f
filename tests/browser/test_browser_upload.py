"""ImageUpload in JupyterLab: a file chosen in the browser reaches the kernel and the model."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from lab_page import BrowserPage, write_notebook
from PIL import Image

pytestmark = pytest.mark.browser

CELLS = [
    "from stackit_nb.widgets import ImageUpload\n\nupload = ImageUpload()\nupload",
    "image = upload.images[0]\nprint(type(image).__name__, image.mime_type)\nprint(image.meta)",
    "from haystack.dataclasses import ChatMessage\n"
    "from stackit_nb import STACKITChatGenerator\n\n"
    'vision = STACKITChatGenerator(model="google/gemma-3-27b-it")\n'
    'question = ChatMessage.from_user(content_parts=["What colour dominates this image?", image])\n'
    'print(vision.run([question])["replies"][0].text)',
]


def test_image_upload_reaches_the_kernel_and_the_vision_model(
    browser_page: BrowserPage, tmp_path: Path
) -> None:
    photo = tmp_path / "red.jpg"
    # larger than the 1024 px the widget sends, so the size line shows a real conversion
    Image.new("RGB", (2000, 1500), (200, 20, 20)).save(photo, quality=90)
    write_notebook(browser_page.lab.root / "browser_upload.ipynb", CELLS)
    notebook = browser_page.open("browser_upload.ipynb")
    notebook.run_cell(0)
    button = notebook.output(0).locator("button.widget-upload")
    # ipywidgets' <input type=file> is never attached to the page: only the real chooser works
    with notebook.page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(photo)

    card = notebook.output(0).locator(".stackit-nb-image")
    thumbnail = card.locator("img")
    thumbnail.wait_for(timeout=20_000)
    assert thumbnail.get_attribute("src", timeout=1000).startswith("data:image/jpeg;base64,")
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") == 128
    assert re.search(r"red\.jpg\s+2000x1500, \d+ KB -> 1024x768, \d+ KB", card.inner_text())
    assert "1 image ready" in notebook.output(0).inner_text()

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
