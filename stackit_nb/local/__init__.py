"""The local STACKIT-compatible server: the same wire protocol, no key, no network.

Example::

    from stackit_nb.local import LocalSTACKIT

    with LocalSTACKIT() as srv:
        print(srv.url)  # http://127.0.0.1:PORT/v1
"""

from stackit_nb.local.runner import LocalSTACKIT

__all__ = ["LocalSTACKIT"]
