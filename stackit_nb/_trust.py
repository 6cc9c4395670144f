"""Settings a loaded pipeline may not choose unless the caller trusts its file.

A saved pipeline (YAML, or a dict for ``from_dict``) names where a component sends the key, so
loading one from elsewhere is running its author's choice of destination with your key. Haystack's
module allowlist decides which classes may load; this decides which settings of our components
may: any of the following makes ``from_dict`` (and so ``Pipeline.loads``) refuse with
:class:`~stackit_nb.errors.UntrustedSettingsError`, unless the caller opts in:

- ``http_client_kwargs`` that route or rewrite requests: ``proxy``/``proxies``/``mounts``
  (through someone's proxy), ``verify`` (no certificate check, so any interceptor passes),
  ``headers``, ``auth``, ``base_url``, ``transport``, ``event_hooks``;
- an ``api_key`` read from another environment variable than ``STACKIT_API_KEY`` (which would
  send that variable's secret, e.g. ``GITHUB_TOKEN``, to the endpoint);
- an ``api_base_url`` that is neither STACKIT's (``https://…onstackit.cloud``) nor this machine.

Opting in, for files you wrote or trust::

    with stackit_nb.trust_loaded_settings():
        pipeline = Pipeline.loads(text, allowed_modules=["stackit_nb"])

or ``STACKIT_NB_TRUST_LOADED_SETTINGS=1`` in the environment, for the whole process.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from stackit_nb._common import API_KEY_ENV, DEFAULT_API_BASE_URL, is_local_url
from stackit_nb.errors import UntrustedSettingsError

#: Set to ``1`` to trust the settings of every pipeline this process loads.
TRUST_ENV = "STACKIT_NB_TRUST_LOADED_SETTINGS"
#: ``http_client_kwargs`` that decide where requests go, or what they carry.
ROUTING_CLIENT_KWARGS = frozenset(
    {
        "proxy",
        "proxies",
        "mounts",
        "verify",
        "headers",
        "auth",
        "base_url",
        "transport",
        "event_hooks",
    }
)
_STACKIT_DOMAIN = "onstackit.cloud"
_trusted: contextvars.ContextVar[bool] = contextvars.ContextVar("trusted", default=False)


@contextlib.contextmanager
def trust_loaded_settings() -> Iterator[None]:
    """Within this block, components load whatever endpoint, key variable and HTTP client
    settings their saved form names. Only for pipeline files you wrote or trust.

    Example::

        import stackit_nb
        from haystack import Pipeline

        with stackit_nb.trust_loaded_settings():
            pipeline = Pipeline.loads(text, allowed_modules=["stackit_nb"])
    """
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


def is_stackit_url(url: str) -> bool:
    """Whether ``url`` is one of STACKIT's HTTPS endpoints."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (
        host == _STACKIT_DOMAIN or host.endswith("." + _STACKIT_DOMAIN)
    )


def check_loaded_settings(cls: type, params: Mapping[str, Any]) -> None:
    """Refuse ``params`` (a component's saved ``init_parameters``) that would send the key, or
    another secret, elsewhere than STACKIT or this machine, unless the caller trusts them."""
    if _trusted.get() or os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return
    problems = []
    client_kwargs = params.get("http_client_kwargs") or {}
    routing = sorted(ROUTING_CLIENT_KWARGS & set(client_kwargs)) if client_kwargs else []
    if routing:
        listed = ", ".join(repr(key) for key in routing)
        problems.append(f"http_client_kwargs sets {listed}, which decide where requests go")
    key = params.get("api_key")
    env_vars = key.get("env_vars") if isinstance(key, Mapping) else None
    if key is not None and env_vars != [API_KEY_ENV]:
        problems.append(
            f"api_key reads {env_vars or key!r} instead of {API_KEY_ENV} (that variable's "
            "secret would be sent)"
        )
    url = str(params.get("api_base_url") or DEFAULT_API_BASE_URL)
    if not (is_stackit_url(url) or is_local_url(url)):
        problems.append(f"api_base_url is {url!r}, neither STACKIT's nor this machine's")
    if problems:
        raise UntrustedSettingsError(
            f"Refusing to load this {cls.__name__}: " + "; ".join(problems) + ". A saved "
            "pipeline chooses where your key goes. If you wrote this file or trust it, load it "
            "inside `with stackit_nb.trust_loaded_settings():` (or set "
            f"{TRUST_ENV}=1 for the whole process); otherwise remove these settings from it."
        )
