"""The ``%%stackit`` cell magic: one prompt per cell, the reply streamed and kept for the next cell.

Load it once per notebook, then write a prompt under ``%%stackit``::

    %load_ext stackit_nb

    %%stackit --system "Answer in one sentence."
    Why is the sky blue?

The reply streams into a :class:`~stackit_nb.widgets.StreamingDisplay` and is stored as a
Haystack ``ChatMessage`` in the variable ``_stackit`` (``_stackit.text``, ``_stackit.meta``).

Options (on the ``%%stackit`` line):

- ``--model M`` / ``-m M``: the model id. Default: the same as ``stackit-nb chat``, a chat model,
  or a vision model when the cell sends an image. If the endpoint no longer serves the default,
  the first model of the right kind that it does serve is used, and a line says so.
- ``--image PATH`` / ``-i PATH``: attach an image (repeat it for several). It is scaled down and
  re-encoded by :func:`stackit_nb.images.to_image_content`; a relative path is relative to the
  notebook's folder.
- ``--system S`` / ``-s S``: a system prompt (quote it when it has spaces).
- ``--json``: ask for a JSON object (``response_format={"type": "json_object"}``); the parsed
  object is stored in ``_stackit_json`` as well (``None`` when the reply is not valid JSON).
- ``--vars``: fill ``{name}`` placeholders in the prompt from the notebook's variables.

Variables: IPython expands ``{name}`` and ``$name`` on the ``%%stackit`` line itself, so
``--image {path}`` and ``--system "{persona}"`` work (quote values that may contain spaces).
The prompt below the line is sent exactly as written, because prompts often contain code, JSON
or prices whose braces and dollar signs must not change; ``--vars`` opts in to ``str.format``
filling (``{text}``, ``{doc.title}``, ``{items[0]}``; ``{{`` and ``}}`` for literal braces), and
an unknown name is an error, not a silent blank.

Where it sends requests: the backend :func:`stackit_nb.connect` chose. If ``connect()`` was not
called yet, the first ``%%stackit`` cell calls it (its one line says which backend). One
generator per model is kept across cells, so later cells reuse its connection.

Errors (unknown model, missing image, rate limit, ...) are shown as one clear message instead of
a traceback, and ``_stackit`` is set to ``None`` so that a later cell never reads a stale reply.
A reply that breaks off mid-stream keeps its partial text with the error under it.

``%stackit models`` (one ``%``) shows the models the endpoint serves.
"""

from __future__ import annotations

import contextlib
import os
import string
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split

from stackit_nb._terminal import printable

if TYPE_CHECKING:
    from argparse import Namespace

    from haystack.dataclasses import ChatMessage
    from IPython.core.interactiveshell import InteractiveShell

    from stackit_nb.generator import STACKITChatGenerator
    from stackit_nb.models import ModelList

#: The variable that receives each reply (a ``ChatMessage``, or ``None`` after an error).
REPLY_VARIABLE = "_stackit"
#: The variable that receives the parsed reply of a ``--json`` cell.
JSON_VARIABLE = "_stackit_json"


class _Failed(Exception):
    """A problem already explained to the user; the cell ends quietly."""


@magics_class
class StackitMagics(Magics):
    """``%%stackit`` (a prompt per cell) and ``%stackit models``; see the module docstring."""

    def __init__(self, shell: InteractiveShell | None = None) -> None:
        super().__init__(shell)
        # (model, base URL) -> generator: one client per model, rebuilt if connect() moves
        self._generators: dict[tuple[str, str], STACKITChatGenerator] = {}
        # "chat"/"vision" -> the model used because the endpoint does not serve the default
        self._fallbacks: dict[str, str] = {}

    @magic_arguments()
    @argument("--model", "-m", default=None, help="model id (default: a chat or vision model)")
    @argument("--image", "-i", action="append", default=[], metavar="PATH", help="attach an image")
    @argument("--system", "-s", default=None, help="system prompt")
    @argument("--json", action="store_true", help="ask for a JSON object; parsed in _stackit_json")
    @argument("--vars", action="store_true", help="fill {name} in the prompt from variables")
    @argument("command", nargs="*", help="line magic only: `models` lists the models")
    @line_cell_magic
    def stackit(self, line: str, cell: str | None = None) -> Any:
        """Send the cell as a prompt and stream the reply (``%stackit models``: list models).

        The reply is stored in ``_stackit`` (a ``ChatMessage``); with ``--json`` the parsed
        object also in ``_stackit_json``.
        """
        args = _parse(line)
        if cell is None:
            return self._line(args)
        if args.command:
            raise UsageError(
                f"%%stackit takes options only on its line, not {' '.join(args.command)!r}: "
                "the prompt goes in the cell below it."
            )
        with contextlib.suppress(_Failed):  # already explained in one line
            self._ask(args, cell)
        return None

    # -- line form ----------------------------------------------------------------------------

    def _line(self, args: Namespace) -> ModelList | None:
        if args.command == ["models"]:
            from stackit_nb.connection import list_models
            from stackit_nb.errors import STACKITError

            self._connect()
            try:
                return list_models()
            except Exception as exc:
                if not _explained(exc, STACKITError):
                    raise
                _complain(exc)
                return None
        raise UsageError(
            "Use %%stackit (two %) at the top of a cell whose text is the prompt, e.g.\n"
            '    %%stackit --system "Answer briefly."\n'
            "    Why is the sky blue?\n"
            "or %stackit models to list the models."
        )

    # -- cell form ----------------------------------------------------------------------------

    def _ask(self, args: Namespace, cell: str) -> None:
        from haystack.dataclasses import ChatMessage

        from stackit_nb.errors import ModelNotFoundError
        from stackit_nb.widgets import StreamingDisplay

        namespace = self.shell.user_ns if self.shell is not None else {}
        namespace[REPLY_VARIABLE] = None  # a failure below must not leave an older reply behind
        if args.json:
            namespace[JSON_VARIABLE] = None
        prompt = _fill(cell, namespace) if args.vars else cell
        if not prompt.strip():
            _complain("the cell is empty: write the prompt below the %%stackit line.")
            raise _Failed
        images = [_image(path) for path in args.image]
        messages = [ChatMessage.from_system(args.system)] if args.system else []
        messages.append(ChatMessage.from_user(content_parts=[prompt.strip(), *images]))
        kind = "vision" if images else "chat"
        kwargs = {"response_format": {"type": "json_object"}} if args.json else None

        self._connect()
        model = args.model or self._fallbacks.get(kind) or _default_model(kind)
        display = StreamingDisplay()
        try:
            reply = self._run(model, messages, display, kwargs)
        except ModelNotFoundError as exc:
            if args.model or kind in self._fallbacks:
                self._fail(display, exc)
            # STACKIT retires models: a retired default falls back to one the endpoint serves
            fallback = self._fallbacks[kind] = self._first_served(kind, exc)
            _complain(f"{model} is not served here; using {fallback} (choose with --model).")
            reply = self._run(fallback, messages, display, kwargs)

        namespace[REPLY_VARIABLE] = reply
        if args.json:
            parsed = reply.meta.get("parsed")
            namespace[JSON_VARIABLE] = parsed
            if parsed is None:
                error = reply.meta.get("parse_error", "no text")
                _complain(f"the reply is not valid JSON ({error}); _stackit_json is None.")

    def _run(
        self,
        model: str,
        messages: list[ChatMessage],
        display: Any,
        generation_kwargs: dict[str, Any] | None,
    ) -> ChatMessage:
        """One streamed request; an error the user can act on ends the cell with its message."""
        from stackit_nb.errors import ModelNotFoundError, STACKITError

        try:
            result = self._generator(model).run(
                messages, streaming_callback=display, generation_kwargs=generation_kwargs
            )
        except ModelNotFoundError:
            raise  # the caller may fall back to another model
        except Exception as exc:
            if not _explained(exc, STACKITError):
                raise
            self._fail(display, exc)
        return result["replies"][0]

    def _fail(self, display: Any, error: BaseException) -> None:
        if display.text or display.reasoning:
            display.fail(error)  # keep what streamed, with the error under it
        else:
            _complain(error)
        raise _Failed

    def _generator(self, model: str) -> STACKITChatGenerator:
        from stackit_nb._common import resolve_base_url
        from stackit_nb.generator import STACKITChatGenerator

        key = (model, resolve_base_url(None))
        if key not in self._generators:
            self._generators[key] = STACKITChatGenerator(model=model)
        return self._generators[key]

    def _first_served(self, kind: str, error: BaseException) -> str:
        from stackit_nb.connection import list_models

        try:
            models = list_models()
        except Exception:
            _complain(error)  # the original error says more than a failed listing
            raise _Failed from None
        candidates = models.vision if kind == "vision" else models.chat
        if not candidates:
            _complain(error)
            raise _Failed
        return candidates[0].id

    @staticmethod
    def _connect() -> None:
        from stackit_nb.connection import connect, current

        if current() is None:
            connect()  # prints the one line that says which backend answers


def _parse(line: str) -> Namespace:
    """The options, split like a shell does (IPython's own parsing keeps the quotes in
    ``--system "Be brief."`` as part of the value)."""
    try:
        argv = arg_split(line, posix=True)
    except ValueError as exc:
        raise UsageError(f"cannot read the %%stackit options ({exc}): {line}") from None
    return StackitMagics.stackit.parser.parse_args(argv)  # type: ignore[attr-defined, no-any-return]


def _default_model(kind: str) -> str:
    from stackit_nb.models import DEFAULT_CHAT_MODEL, DEFAULT_VISION_MODEL

    return DEFAULT_VISION_MODEL if kind == "vision" else DEFAULT_CHAT_MODEL


def _explained(exc: BaseException, own: type[BaseException]) -> bool:
    """Whether ``exc`` is an error whose message tells the user what to do (no traceback)."""
    import openai

    return isinstance(exc, own | openai.OpenAIError)


def _image(path: str) -> Any:
    from stackit_nb.images import ImageError, to_image_content

    try:
        return to_image_content(os.path.expanduser(path))
    except ImageError as exc:
        _complain(exc)
        raise _Failed from None


def _fill(prompt: str, namespace: dict[str, Any]) -> str:
    """``prompt`` with ``{name}`` placeholders filled from ``namespace`` (``str.format`` rules)."""
    try:
        return string.Formatter().vformat(prompt, (), namespace)
    except KeyError as exc:
        name = exc.args[0]
        _complain(
            f"--vars: {{{name}}} in the prompt, but there is no variable {name!r} "
            "(write {{ and }} for literal braces)."
        )
    except (AttributeError, IndexError, ValueError) as exc:
        _complain(f"--vars: cannot fill the prompt: {exc} (write {{{{ and }}}} for braces).")
    raise _Failed


def _complain(problem: BaseException | str) -> None:
    message = problem if isinstance(problem, str) else f"{type(problem).__name__}: {problem}"
    print(printable(f"%%stackit: {message}"), file=sys.stderr, flush=True)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the magics (``%load_ext stackit_nb`` calls this through the package)."""
    ipython.register_magics(StackitMagics)
