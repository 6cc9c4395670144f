"""A real IPython kernel for tests: run code in it and see every message it sends to a front end.

Not a test module: a helper for the widget, magic and notebook tests (and the benchmarks). It
starts the venv's ``ipykernel`` through ``jupyter_client`` and records each iopub message with its
receive time, so a test can assert on what a browser would get: which outputs, how many widget
messages, how many bytes.

Example::

    from kernel import KernelSession  # pytest puts tests/ on sys.path (rootdir conftest)

    with KernelSession() as kernel:
        run = kernel.execute("import ipywidgets as w; s = w.IntSlider(); display(s); s.value = 3")
        assert run.error is None
        assert run.count("comm_msg") >= 1
        print(run.nbytes(), run.outputs)

The kernel is always shut down on leaving the ``with`` block, also after a failure.

Counts are of what the client received. A kernel that floods iopub (thousands of messages
faster than they are read) hits zmq's high-water mark and drops messages, the idle status
included; ``execute`` then ends on the shell reply and a second of silence.
"""

from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

#: iopub message types that reach a front end as data (status and execute_input are protocol
#: chatter every cell has, so they are left out of counts and byte totals).
FRONTEND_TYPES = frozenset(
    {
        "comm_open",
        "comm_msg",
        "comm_close",
        "display_data",
        "update_display_data",
        "clear_output",
        "stream",
        "execute_result",
        "error",
    }
)


@dataclass
class Message:
    """One iopub message as the client received it."""

    msg_type: str
    content: dict[str, Any]
    buffers: list[bytes]
    parent_id: str | None
    received: float
    """``time.time()`` when the client read the message."""
    sent: float
    """``time.time()`` in the kernel when it made the message (its header's date; the same clock
    as the client's, both run on this machine). Use it for rates: reading can lag behind."""

    @property
    def nbytes(self) -> int:
        """Serialized size: JSON of the content as jupyter_client packs it, plus binary buffers."""
        packed = json.dumps(self.content, ensure_ascii=False, default=str).encode("utf-8")
        return len(packed) + sum(len(b) for b in self.buffers)

    @property
    def comm_id(self) -> str | None:
        return self.content.get("comm_id")

    @property
    def custom(self) -> Any:
        """The payload of a widget's custom message (``widget.send(...)``), else ``None``."""
        if self.msg_type != "comm_msg":
            return None
        data = self.content.get("data", {})
        return data.get("content") if data.get("method") == "custom" else None

    @property
    def state(self) -> dict[str, Any] | None:
        """The widget state carried by a ``comm_open`` or an ``update`` comm message."""
        data = self.content.get("data", {})
        if self.msg_type == "comm_open" or data.get("method") == "update":
            return data.get("state")
        return None


class Messages(list[Message]):
    """A list of iopub messages with counting helpers."""

    def select(self, *types: str, comm_id: str | None = None) -> Messages:
        """Messages of the given types (default: all that reach a front end), optionally of one
        widget (``comm_id``)."""
        wanted = set(types) if types else FRONTEND_TYPES
        return Messages(
            m for m in self if m.msg_type in wanted and (comm_id is None or m.comm_id == comm_id)
        )

    def count(self, *types: str, comm_id: str | None = None) -> int:
        """How many messages of these types (default: all that reach a front end)."""
        return len(self.select(*types, comm_id=comm_id))

    def nbytes(self, *types: str, comm_id: str | None = None) -> int:
        """Their total serialized size in bytes."""
        return sum(m.nbytes for m in self.select(*types, comm_id=comm_id))

    def customs(self, comm_id: str | None = None) -> list[Any]:
        """The payloads of custom widget messages, in order."""
        return [m.custom for m in self.select("comm_msg", comm_id=comm_id) if m.custom is not None]

    def comm_opens(self, target_module: str | None = None) -> Messages:
        """``comm_open`` messages, optionally only widgets whose model module is this one."""
        opens = self.select("comm_open")
        if target_module is None:
            return opens
        return Messages(m for m in opens if (m.state or {}).get("_model_module") == target_module)

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The cell's outputs as a notebook would store them (streams merged, display updates
        applied), in nbformat's shape."""
        outputs: list[dict[str, Any]] = []
        by_display_id: dict[str, list[int]] = {}
        for m in self:
            content = m.content
            if m.msg_type == "stream":
                if outputs and outputs[-1].get("name") == content["name"]:
                    outputs[-1]["text"] += content["text"]
                else:
                    outputs.append({"output_type": "stream", **content})
            elif m.msg_type in ("display_data", "execute_result"):
                out = {"output_type": m.msg_type, "data": content["data"]}
                display_id = content.get("transient", {}).get("display_id")
                if display_id:
                    by_display_id.setdefault(display_id, []).append(len(outputs))
                outputs.append(out)
            elif m.msg_type == "update_display_data":
                for index in by_display_id.get(content["transient"]["display_id"], []):
                    outputs[index]["data"] = content["data"]
            elif m.msg_type == "error":
                outputs.append({"output_type": "error", **content})
            elif m.msg_type == "clear_output":
                outputs.clear()
                by_display_id.clear()
        return outputs

    def text(self, name: str = "stdout") -> str:
        """Everything written to one stream (``stdout`` or ``stderr``)."""
        return "".join(
            m.content["text"] for m in self.select("stream") if m.content["name"] == name
        )


@dataclass
class Execution:
    """The result of :meth:`KernelSession.execute`: the reply and every message of the cell."""

    code: str
    msg_id: str
    reply: dict[str, Any]
    messages: Messages = field(default_factory=Messages)
    started: float = 0.0
    """``time.time()`` just before the request was sent."""

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"ename", "evalue", "traceback"}`` when the cell raised, else ``None``."""
        return None if self.reply.get("status") == "ok" else self.reply

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return self.messages.outputs

    @property
    def stdout(self) -> str:
        return self.messages.text("stdout")

    def count(self, *types: str, comm_id: str | None = None) -> int:
        return self.messages.count(*types, comm_id=comm_id)

    def nbytes(self, *types: str, comm_id: str | None = None) -> int:
        return self.messages.nbytes(*types, comm_id=comm_id)


class KernelError(AssertionError):
    """A cell raised in the kernel when the test did not expect it."""


class KernelSession:
    """A real ``ipykernel`` (the current interpreter's) for the duration of a ``with`` block.

    :param env: Extra environment variables for the kernel (added to this process's environment;
        ``HAYSTACK_TELEMETRY_ENABLED=False`` is always set).
    :param cwd: Working directory of the kernel.
    :param startup_timeout: Seconds to wait for the kernel to answer.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self._env = {**os.environ, "HAYSTACK_TELEMETRY_ENABLED": "False", **(env or {})}
        self._cwd = os.fspath(cwd) if cwd is not None else None
        self._startup_timeout = startup_timeout
        self._manager: KernelManager | None = None
        self._client: BlockingKernelClient | None = None
        self.log = Messages()
        """Every iopub message received so far, of any cell, in order."""

    def __enter__(self) -> KernelSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Start the kernel and wait until it answers."""
        # "python3" resolves to this interpreter (jupyter_client swaps `python` for sys.executable)
        self._manager = KernelManager(kernel_name="python3")
        try:
            self._manager.start_kernel(env=self._env, cwd=self._cwd)
            self._client = self._manager.client()
            self._client.start_channels()
            self._client.wait_for_ready(timeout=self._startup_timeout)
            self._drain(0.2)  # the startup status messages
        except BaseException:
            self.shutdown()
            raise

    def shutdown(self) -> None:
        """Stop the kernel (idempotent)."""
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
        if self._manager is not None:
            if self._manager.has_kernel:
                self._manager.shutdown_kernel(now=True)
            self._manager = None

    @property
    def client(self) -> BlockingKernelClient:
        if self._client is None:
            raise RuntimeError("the kernel is not running: use `with KernelSession() as kernel:`")
        return self._client

    def execute(
        self,
        code: str,
        *,
        timeout: float = 60.0,
        settle: float = 0.0,
        allow_error: bool = False,
    ) -> Execution:
        """Run ``code`` as one cell and collect its messages until the kernel is idle.

        :param timeout: Seconds to wait for the cell to finish.
        :param settle: Keep listening this long after idle, for messages sent later by threads
            or tasks the cell started (they are attributed to the cell if their parent is it).
        :param allow_error: Return normally when the cell raises (see ``Execution.error``);
            by default a :class:`KernelError` with the traceback is raised.
        """
        started = time.time()
        msg_id = self.client.execute(code, allow_stdin=False)
        run = Execution(code=code, msg_id=msg_id, reply={}, started=started)
        deadline = time.monotonic() + timeout
        reply: dict[str, Any] | None = None
        idle = False
        while not idle:
            reply = reply or self._reply_to(msg_id, wait=0.0)
            message = self._next(deadline, code, quiet=reply is not None)
            if message is None:
                break  # replied, and iopub fell silent: its idle status was dropped (see above)
            if message.parent_id != msg_id:
                continue
            if message.msg_type == "status":
                idle = message.content["execution_state"] == "idle"
            elif message.msg_type != "execute_input":
                run.messages.append(message)
        reply = reply or self._reply_to(msg_id, wait=max(1.0, deadline - time.monotonic()))
        if reply is None:
            raise TimeoutError(f"no reply to the cell:\n{code}")
        run.reply = reply["content"]
        if settle:
            run.messages.extend(m for m in self._drain(settle) if m.parent_id == msg_id)
        if run.error is not None and not allow_error:
            trace = "\n".join(run.error.get("traceback", []))
            raise KernelError(f"the cell raised {run.error['ename']}:\n{trace}\n--- code:\n{code}")
        return run

    def drain(self, seconds: float) -> Messages:
        """Listen for ``seconds`` and return what arrived (e.g. late messages from threads)."""
        return self._drain(seconds)

    def _reply_to(self, msg_id: str, wait: float) -> dict[str, Any] | None:
        """The shell reply to ``msg_id``, waiting up to ``wait`` seconds (0: just look)."""
        end = time.monotonic() + wait
        while True:
            try:
                reply = self.client.get_shell_msg(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return None
            # skip stale replies (wait_for_ready may leave kernel_info replies behind)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def _next(self, deadline: float, code: str, quiet: bool = False) -> Message | None:
        """The next iopub message; ``None`` if ``quiet`` and nothing came for a second."""
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                return self._record(self.client.get_iopub_msg(timeout=min(remaining, 1.0)))
            except queue.Empty:
                if quiet:
                    return None
        if self._manager is not None:
            self._manager.interrupt_kernel()
        raise TimeoutError(f"the cell did not finish in time:\n{code}")

    def _drain(self, seconds: float) -> Messages:
        got = Messages()
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            try:
                got.append(self._record(self.client.get_iopub_msg(timeout=remaining)))
            except queue.Empty:
                break
        return got

    def _record(self, raw: dict[str, Any]) -> Message:
        message = Message(
            msg_type=raw["msg_type"],
            content=raw["content"],
            buffers=[bytes(b) for b in raw.get("buffers") or []],
            parent_id=(raw.get("parent_header") or {}).get("msg_id"),
            received=time.time(),
            sent=_timestamp(raw.get("header", {}).get("date")),
        )
        self.log.append(message)
        return message


def _timestamp(date: Any) -> float:
    if isinstance(date, datetime):
        return (date if date.tzinfo else date.replace(tzinfo=UTC)).timestamp()
    return time.time()


def frontend_messages(messages: Iterable[Message]) -> Iterator[Message]:
    """Only the messages that carry data to a front end (see :data:`FRONTEND_TYPES`)."""
    return (m for m in messages if m.msg_type in FRONTEND_TYPES)


def stream_sections(messages: Messages, comm_id: str | None = None) -> dict[int, str]:
    """What StreamingDisplay's front end (stream.js) builds from its custom messages: section id
    -> body HTML. Offsets count UTF-16 code units, as JavaScript strings do."""
    frozen: dict[int, bytes] = {}
    tails: dict[int, bytes] = {}
    for payload in messages.customs(comm_id):
        for op in payload["ops"]:
            if op[0] == "s":
                frozen[op[1]], tails[op[1]] = b"", b""
            elif op[0] == "b":
                tail = tails[op[1]][: 2 * op[2]] + op[3].encode("utf-16-le")
                frozen[op[1]] += tail[: 2 * op[4]]
                tails[op[1]] = tail[2 * op[4] :]
    return {k: (frozen[k] + tails[k]).decode("utf-16-le") for k in frozen}
