"""Logs: JSON lines, URL credentials redacted, exception text never printed."""

from __future__ import annotations

import json
import logging

from agentos_secrets.sidecar.logs import (
    JsonFormatter,
    RedactingFilter,
    TextFormatter,
    redact,
)


def _record(msg: str, *args: object, fields: dict | None = None, exc: bool = False):
    record = logging.LogRecord("agentos_secrets.sidecar", logging.WARNING, __file__, 1, msg,
                               args, None)
    if fields is not None:
        record.fields = fields
    if exc:
        try:
            raise RuntimeError(msg)
        except RuntimeError:
            import sys

            record.exc_info = sys.exc_info()
    return record


def test_redact_userinfo_and_query(canary):
    text = redact(f"POST https://bot:{canary.value}@hooks.example/r?sig={canary.value}&a=1 ok")
    canary.assert_absent(text)
    assert "https://***@hooks.example/r?***" in text and text.endswith(" ok")
    assert redact("no urls here") == "no urls here"


def test_redact_a_password_holding_an_at_sign(canary):
    # httpx and urllib take the userinfo up to the authority's *last* "@".
    secret = f"{canary.value}@tail-{canary.value}"
    text = redact(f"POST https://bot:{secret}@hooks.example/r failed")
    canary.assert_absent(text)
    assert "tail" not in text
    assert text == "POST https://***@hooks.example/r failed"


def test_json_lines_with_fields_redacted(canary):
    record = _record("calling %s", f"http://u:{canary.value}@h/x",
                     fields={"url": f"http://u:{canary.value}@h/x", "n": 3})
    assert RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    canary.assert_absent(line)
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["n"] == 3
    assert entry["url"] == "http://***@h/x" and entry["msg"] == "calling http://***@h/x"


def test_exceptions_are_reduced_to_their_type(canary):
    record = _record(canary.value.replace("canary", "message"), exc=True)
    record.exc_info = (RuntimeError, RuntimeError(canary.value), None)
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record)
        canary.assert_absent(line)
        assert "RuntimeError" in line


def test_text_format_is_one_readable_line():
    record = _record("action succeeded", fields={"fingerprint": "fp1:0123456789abcdef"})
    RedactingFilter().filter(record)
    line = TextFormatter().format(record)
    assert "\n" not in line and line.endswith("action succeeded fingerprint=fp1:0123456789abcdef")
