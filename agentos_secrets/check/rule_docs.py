"""Each rule's section of ``docs/rules.md``, for reports that carry the help along.

The package ships the document itself (``rules.md`` beside this module, the same file as
``docs/rules.md``), so SARIF's ``help`` is exactly what the documentation says and cannot
drift from it. A section runs from its heading ``### AS203 secret-subpath`` to the next
heading.
"""

from __future__ import annotations

import re
from functools import cache

__all__ = ["rule_help"]

_HEADING = re.compile(r"^(#{2,3}) (AS\d{3}) [a-z0-9-]+\s*$")


@cache
def _sections() -> dict[str, str]:
    from importlib.resources import files

    try:
        text = files(__package__).joinpath("rules.md").read_text(encoding="utf-8")
    except OSError:
        return {}
    sections: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading or line.startswith("## ") or line.startswith("### "):
            if current is not None:
                sections[current] = "\n".join(body).strip()
            current, body = (heading.group(2), []) if heading else (None, [])
            continue
        if current is not None:
            body.append(line)
    if current is not None:
        sections[current] = "\n".join(body).strip()
    return sections


def rule_help(rule_id: str) -> str | None:
    """The Markdown of the rule's section in docs/rules.md (None when absent)."""
    return _sections().get(rule_id) or None
