"""Cassettes: recorded requests and responses of an OpenAI-compatible endpoint, as JSON Lines.

The first line names the format; every further line is one exchange, a request and the response
it got, so a re-recording shows in a diff as the lines that changed::

    {"cassette": "stackit_nb", "version": 1}
    {"request": {"method": "POST", "path": "/v1/chat/completions", "json": {...}},
     "response": {"status": 200, "headers": {"content-type": "application/json"},
                  "after": 0.41, "json": {...}}}

(one line each in the file). A body is stored as ``json`` when encoding the parsed value again
gives the very bytes received (``"style"`` names the encoding when it is not the compact one),
else as ``text``. A streamed response keeps its server-sent events, each with ``t``, the seconds
since the request was sent: ``{"t": 0.12, "data": {...}}``, ``{"t": 0.9, "data": "[DONE]"}``, or
``{"t": ..., "text": "<event as sent>"}``; ``"cut": true`` marks a stream the endpoint broke off.

Images in requests are stored by hash (``"url": "sha256:<hex>"``), their bytes in the folder
``<cassette name>.images/`` beside the file, so a cassette stays small. No secret is written:
request headers are not kept at all, body fields named like credentials are replaced, and the
keys in use are replaced wherever they appear (an endpoint may echo one in an error).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackit_nb.local.wire import dumps

HEADER = {"cassette": "stackit_nb", "version": 1}
REDACTED = "<redacted>"
#: Response headers worth replaying: the body's type and what clients read for rate limits.
KEPT_HEADERS = ("content-type", "retry-after", "retry-after-ms")
KEPT_PREFIXES = ("x-ratelimit-",)
#: Request body fields whose value is a credential (compared lower-case).
SECRET_FIELDS = frozenset(
    {"api_key", "apikey", "api-key", "x-api-key", "access_token", "authorization", "password"}
    | {"secret", "client_secret", "token", "auth_token"}
)
MIN_SECRET_LENGTH = 8  # shorter values are not searched for: replacing them would garble text
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_DATA_URL = re.compile(r"data:(image/[\w.+-]+);base64,(.*)", re.DOTALL)
_IMAGE_REF = re.compile(r"sha256:[0-9a-f]{64}")
_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp"}

#: Encodings a JSON body may have been written with, tried in order; the first is the compact
#: one the local server and vLLM use.
STYLES: dict[str, Callable[[Any], str]] = {
    "compact": dumps,
    "compact-plain": lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")),
    "ascii": lambda v: json.dumps(v, separators=(",", ":")),
    "spaced": json.dumps,
}


class CassetteError(ValueError):
    """A cassette that cannot be read: names the file, the line and what to do."""


@dataclass
class Response:
    """A recorded response: a whole body, or the events of a stream with their times."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None  # None for a stream
    after: float = 0.0  # seconds from the request to the whole body
    events: list[tuple[float, bytes]] | None = None
    cut: bool = False  # the stream was broken off after its events

    @property
    def content(self) -> bytes:
        """The whole body as sent: a stream's events joined."""
        if self.events is None:
            return self.body or b""
        return b"".join(event for _, event in self.events)


@dataclass
class Exchange:
    """One recorded request (its body as stored: images by hash) and its response."""

    method: str
    path: str
    body: Any  # the parsed JSON body, a text body, or None
    response: Response
    line: int = 0  # where it is in the cassette (1-based; 0 when not read from a file)
    extra: dict[str, Any] = field(default_factory=dict)


# -- bodies ---------------------------------------------------------------------------------------


def keep_headers(headers: dict[str, str]) -> dict[str, str]:
    """The response headers a replay needs, lower-cased."""
    out = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in KEPT_HEADERS or lower.startswith(KEPT_PREFIXES):
            out[lower] = value
    return out


def body_fields(raw: bytes) -> dict[str, Any]:
    """How a response body is stored: ``{"json": ..., "style"?: ...}`` or ``{"text": ...}``."""
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {"text": text}
    for style, encode in STYLES.items():
        with contextlib.suppress(ValueError, TypeError, RecursionError):
            if encode(value) == text:
                return {"json": value} if style == "compact" else {"json": value, "style": style}
    return {"text": text}


def body_bytes(fields: dict[str, Any]) -> bytes:
    """The bytes a body was received as, from :func:`body_fields`' output."""
    if "json" in fields:
        style = fields.get("style", "compact")
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
        return STYLES[style](fields["json"]).encode("utf-8")
    if "text" in fields:
        if not isinstance(fields["text"], str):
            raise ValueError('"text" must be a string')
        return fields["text"].encode("utf-8")
    if "base64" in fields:
        return base64.b64decode(fields["base64"], validate=True)
    return b""


def event_fields(t: float, event: bytes) -> dict[str, Any]:
    """How one server-sent event is stored."""
    text = event.decode("utf-8", "replace")
    if text.startswith("data: ") and text.endswith("\n\n") and "\n" not in text[6:-2]:
        data = text[6:-2]
        if data == "[DONE]":
            return {"t": t, "data": data}
        fields = body_fields(data.encode("utf-8"))
        if "json" in fields and "style" not in fields:
            return {"t": t, "data": fields["json"]}
    return {"t": t, "text": text}


def event_bytes(fields: dict[str, Any]) -> bytes:
    if "data" in fields:
        data = fields["data"]
        return b"data: " + (data if data == "[DONE]" else dumps(data)).encode("utf-8") + b"\n\n"
    if not isinstance(fields.get("text"), str):
        raise ValueError('every event needs "data" or "text"')
    return str(fields["text"]).encode("utf-8")


# -- requests: images by hash, credentials out ----------------------------------------------------


class ImageStore:
    """The folder beside a cassette that holds the images its requests sent, by hash."""

    def __init__(self, cassette: Path) -> None:
        self.folder = cassette.with_name(cassette.stem + ".images")

    def save(self, mime: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / (digest + _SUFFIXES.get(mime, ".bin"))
        if not target.exists():
            target.write_bytes(data)
        return f"sha256:{digest}"

    def clear(self) -> None:
        """Remove the images of an earlier recording (only files named by a hash)."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if _IMAGE_REF.fullmatch("sha256:" + path.stem):
                    path.unlink()


def image_ref(url: str, store: ImageStore | None = None) -> str | None:
    """``sha256:<hex>`` for an image data URL (its bytes saved in ``store``), else None."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return None
    try:
        data = base64.b64decode(match.group(2))
    except (binascii.Error, ValueError):
        data = match.group(2).encode("utf-8")
    if store is None:
        return f"sha256:{hashlib.sha256(data).hexdigest()}"
    return store.save(match.group(1), data)


def stored_request(value: Any, store: ImageStore | None = None) -> Any:
    """A request body as a cassette keeps it: images by hash, credential fields redacted."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in SECRET_FIELDS and isinstance(item, str):
                out[key] = REDACTED
            elif key == "url" and isinstance(item, str) and (ref := image_ref(item, store)):
                out[key] = ref
            else:
                out[key] = stored_request(item, store)
        return out
    if isinstance(value, list):
        return [stored_request(item, store) for item in value]
    return value


def parse_request(raw: bytes) -> Any:
    """A request body: parsed JSON, else its text (None when empty)."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


# -- writing --------------------------------------------------------------------------------------


class CassetteWriter:
    """Appends exchanges to a new cassette, one line each, with no secret in any line.

    ``secrets`` are the keys in use (the upstream's, the local token): replaced wherever they
    appear. Each line is written and flushed at once, so a crash keeps what was recorded.
    """

    def __init__(self, path: str | Path, secrets: list[str | None]) -> None:
        self.path = Path(path)
        self.images = ImageStore(self.path)
        self._secrets = [s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH]
        self._lock = threading.Lock()
        self.count = 0

    def start(self) -> None:
        """Begin the file afresh (an earlier recording at this path is replaced)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.images.clear()
        self.path.write_text(json.dumps(HEADER) + "\n", encoding="utf-8")

    def append(self, method: str, path: str, request: bytes, response: Response) -> None:
        body = stored_request(parse_request(request), self.images)
        entry: dict[str, Any] = {"method": method, "path": path}
        if isinstance(body, str):
            entry["text"] = body
        elif body is not None:
            entry["json"] = body
        answer: dict[str, Any] = {"status": response.status, "headers": response.headers}
        if response.events is None:
            answer["after"] = round(response.after, 3)
            answer.update(body_fields(response.body or b""))
        else:
            answer["events"] = [event_fields(round(t, 3), e) for t, e in response.events]
            if response.cut:
                answer["cut"] = True
        line = self._without_secrets(
            json.dumps({"request": entry, "response": answer}, ensure_ascii=False)
        )
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            self.count += 1

    def _without_secrets(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return _BEARER.sub(r"\1" + REDACTED, line)


# -- reading --------------------------------------------------------------------------------------


def read(path: str | Path) -> list[Exchange]:
    """Every exchange of the cassette at ``path``; :class:`CassetteError` names a bad line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no cassette at {path}: record one first (LocalSTACKIT(upstream=..., record=...), "
            "or stackit_nb.connect(cassette=...) with STACKIT_API_KEY set)"
        )
    exchanges, number = [], 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, 1):
            if number == 1:
                _check_header(path, text)
            elif text.strip():
                exchanges.append(_exchange(path, number, text))
    if number == 0:  # an empty file
        _check_header(path, "")
    return exchanges


def _fail(path: Path, number: int, problem: str) -> CassetteError:
    return CassetteError(
        f"{path}, line {number}: {problem}. Fix the line by hand, delete it (its request then "
        "goes to the fallback), or record the cassette again."
    )


def _check_header(path: Path, text: str) -> None:
    try:
        header = json.loads(text)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("cassette") != "stackit_nb":
        raise _fail(path, 1, f"not a stackit_nb cassette; the first line must be {HEADER}")
    if header.get("version") != 1:
        raise _fail(path, 1, f"cassette version {header.get('version')!r}; this reads version 1")


def _exchange(path: Path, number: int, text: str) -> Exchange:
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _fail(path, number, "JSON nested too deeply") from None
    try:
        return _decode(entry, number)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        problem = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise _fail(path, number, f"not an exchange: {problem}") from None


def _decode(entry: Any, number: int) -> Exchange:
    if not isinstance(entry, dict):
        raise ValueError("a line must be a JSON object with request and response")
    request, answer = entry["request"], entry["response"]
    if not isinstance(request, dict) or not isinstance(answer, dict):
        raise ValueError("request and response must be objects")
    method, where = request["method"], request["path"]
    if not isinstance(method, str) or not isinstance(where, str) or not where.startswith("/"):
        raise ValueError('request needs a "method" and a "path" starting with /')
    status = answer["status"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"response status {status!r} is not an HTTP status")
    headers = answer.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("response headers must be an object of strings")
    response = Response(status, headers)
    if "events" in answer:
        events = answer["events"]
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValueError("events must be a list of objects")
        response.events = [(_seconds(e.get("t"), "t"), event_bytes(e)) for e in events]
        response.cut = answer.get("cut") is True
    else:
        response.body = body_bytes(answer)
        response.after = _seconds(answer.get("after", 0.0), "after")
    body = request.get("json", request.get("text"))
    return Exchange(method.upper(), where, body, response, line=number)


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f'"{name}" must be a number of seconds >= 0, got {value!r}')
    return float(value)
