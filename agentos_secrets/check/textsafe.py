"""Text that stays on one line: every report format escapes what a finding names with it.

A name in a manifest could otherwise start a new line of the text report ("0 error(s)
... passed"), a new GitHub workflow command, or drive the CI terminal.
"""

from __future__ import annotations

__all__ = ["one_line"]

#: Control characters and line/paragraph separators.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {
    c: f"\\u{c:04x}" for c in (0x85, 0x2028, 0x2029, *range(0x80, 0xA0))
}


def one_line(text: str) -> str:
    """``text`` on one line, every control character escaped (JSON escapes them itself)."""
    return text.translate(_CONTROL)
