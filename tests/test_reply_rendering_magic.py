"""%%stackit renders code and math as StreamingDisplay does: a reply with a code block and a
formula, streamed by an endpoint that says exactly that, in a real kernel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel import KernelSession
from stub_endpoint import StubEndpoint

pytestmark = pytest.mark.kernel

REPLY = ["Use this:\n\n```python\n", "print('hi')\n", "```\n\nso $E = mc^2$ (costs $5 and $10)."]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubEndpoint]:
    with StubEndpoint() as endpoint:
        endpoint.stream_reply(REPLY)
        yield endpoint


def test_magic_reply_has_highlighted_code_math_and_a_markdown_form(stub: StubEndpoint) -> None:
    env = {"STACKIT_API_KEY": "test-key", "STACKIT_API_BASE_URL": stub.url}
    with KernelSession(env=env) as kernel:
        kernel.execute("%load_ext stackit_nb")
        run = kernel.execute(f"%%stackit --model {stub.model}\nShow me code.", timeout=60)
    assert run.error is None
    (saved,) = [o for o in run.outputs if "text/html" in o.get("data", {})]
    page, markdown = saved["data"]["text/html"], saved["data"]["text/markdown"]
    assert '<span class="snb-code-language">python</span>' in page
    assert '<span class="b">print</span>' in page
    assert "\\(E = mc^2\\)" in page and "mathjax_ignore" in page
    assert "```python\nprint('hi')\n```" in markdown
    assert "$E = mc^2$ (costs &#36;5 and &#36;10)." in markdown
    live = [op for c in run.messages.customs() for op in c["ops"] if op[0] == "b"]
    assert any("<math " in op[3] for op in live)  # the live view typesets it as MathML
