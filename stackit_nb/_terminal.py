"""Text from a model or an endpoint, made safe to print to a terminal.

A terminal obeys control characters in what it prints: escape sequences in a reply (which a
prompt injection can plant) can set the window title, clear the screen, fake a hyperlink (OSC 8)
or write the clipboard (OSC 52), and bidirectional overrides can make it show text in another order
than it has. :func:`printable` removes every control character except newline and tab, those
overrides, and whole escape sequences where they are complete, so what a reply says is shown as
text and nothing else.
"""

from __future__ import annotations

import re

# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC strings up to their
# terminator (BEL or ESC \), and two-character escapes
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -~])"
)
# C0 controls but tab and newline, DEL, and C1 controls (0x9b is a one-byte CSI in some terminals);
# and Unicode's bidirectional embeddings, overrides and isolates, which make a terminal show text
# in another order than it has ("Trojan Source": a command that reads as harmless but is not).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without control characters (newline and tab stay) or escape sequences."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))
