"""Fixtures shared by the whole suite.

``canary`` is a known secret value that must never appear in captured logs, stdout,
stderr, exception text or reprs. Tests that handle secrets use it and call
``canary.assert_absent(text, ...)`` on everything a user could see; when the test ends,
the fixture itself also scans every log record (at DEBUG and above, with tracebacks) and
the captured stdout and stderr of that test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

CANARY_VALUE = "canary-Zq9-do-not-leak-7f3e1c"


class Canary:
    value = CANARY_VALUE
    value_bytes = CANARY_VALUE.encode()

    def assert_absent(self, *texts: object) -> None:
        for text in texts:
            if isinstance(text, bytes):
                assert self.value_bytes not in text, "the canary secret leaked"
            else:
                assert self.value not in str(text), "the canary secret leaked"


class _RecordAll(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture
def canary(capfd: pytest.CaptureFixture[str]) -> Iterator[Canary]:
    handler = _RecordAll()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    value = Canary()
    try:
        yield value
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    out, err = capfd.readouterr()
    value.assert_absent(out, err, *handler.lines)
