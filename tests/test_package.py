"""The package's public surface: what `import stackit_nb` offers, and what it does not load."""

from __future__ import annotations

import subprocess
import sys

import stackit_nb


def test_every_public_name_resolves() -> None:
    for name in stackit_nb.__all__:
        assert getattr(stackit_nb, name) is not None, name
    assert sorted(stackit_nb.__all__) == sorted([*stackit_nb._EXPORTS, "__version__"])
    assert callable(stackit_nb.connect) and callable(stackit_nb.list_models)


def test_import_is_lazy() -> None:
    """Widgets, pillow, the server stack and Haystack load on first use, not on import."""
    heavy = ["PIL", "ipywidgets", "fastapi", "uvicorn", "haystack", "openai", "matplotlib"]
    code = f"import sys, stackit_nb; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
