"""The local STACKIT-compatible server: the same wire protocol, no key, no network.

Example::

    from stackit_nb.local import LocalSTACKIT

    with LocalSTACKIT() as srv:
        print(srv.url)  # http://127.0.0.1:PORT/v1

``LocalSTACKIT`` is loaded on first use, so light modules of this package (such as
:mod:`stackit_nb.local.engines.interface`) can be imported without loading the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LocalSTACKIT"]

if TYPE_CHECKING:
    from stackit_nb.local.runner import LocalSTACKIT


def __getattr__(name: str) -> Any:
    if name != "LocalSTACKIT":
        raise AttributeError(f"module 'stackit_nb.local' has no attribute {name!r}")
    from stackit_nb.local.runner import LocalSTACKIT

    globals()[name] = LocalSTACKIT
    return LocalSTACKIT
