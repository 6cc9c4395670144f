"""A reply that ends in tool calls (``finish_reason: tool_calls``, nothing after it in the cell)
still hands over to a saved plain copy when its cell ends, in a real kernel."""

from __future__ import annotations

import textwrap

import pytest
from kernel import KernelSession

pytestmark = pytest.mark.kernel

SETUP = """
from haystack.dataclasses import StreamingChunk, ToolCallDelta
from stackit_nb.widgets import StreamingDisplay
meta = {"model": "openai/gpt-oss-20b"}
"""


def test_a_reply_ending_in_tool_calls_is_saved_when_its_cell_ends() -> None:
    code = textwrap.dedent(
        """
        d = StreamingDisplay()
        d(StreamingChunk(content="Checking. ", meta=meta, index=0))
        d(StreamingChunk(content="", meta=meta, index=1, start=True, tool_calls=[
            ToolCallDelta(index=0, tool_name="get_weather", id="call_1", arguments='{"city":')]))
        d(StreamingChunk(content="", meta=meta, index=1,
                         tool_calls=[ToolCallDelta(index=0, arguments=' "Berlin"}')]))
        d(StreamingChunk(content="", meta=meta, finish_reason="tool_calls"))
        d(StreamingChunk(content="", meta={**meta, "usage": {"prompt_tokens": 9,
                                                             "completion_tokens": 4}}))
        """
    )
    with KernelSession() as kernel:
        kernel.execute(SETUP)
        run = kernel.execute(code)
        later = kernel.execute("print(d.text)")
    saved = [o for o in run.outputs if "text/html" in o.get("data", {})]
    assert len(saved) == 1, run.outputs
    html = saved[0]["data"]["text/html"]
    assert "Checking." in html and "Tool call · get_weather" in html
    assert "finish: tool_calls" in html and "9 tokens in · 4 out" in html
    assert saved[0]["data"]["text/plain"] == "Checking. "
    hide = [op for payload in run.messages.customs() for op in payload["ops"] if op == ["h"]]
    assert hide == [["h"]]  # the live view handed over to the saved copy
    assert later.outputs == [{"output_type": "stream", "name": "stdout", "text": "Checking. \n"}]
