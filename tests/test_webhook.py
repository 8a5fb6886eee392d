"""The reload-request signature helpers: never an exception that carries the key."""

from __future__ import annotations

import traceback

import pytest

from agentos_secrets.webhook import sign, verify_signature


def _all_text(exc: BaseException) -> str:
    texts = ["".join(traceback.format_exception(exc))]
    link: BaseException | None = exc
    while link is not None:
        texts += [str(link), repr(link), *map(repr, link.args)]
        link = link.__cause__ or link.__context__
    return "\n".join(texts)


def test_a_text_key_that_is_not_unicode_never_travels_in_the_error(canary):
    key = canary.value + "\ud800"
    with pytest.raises(ValueError) as info:
        sign(key, b"{}", timestamp=1_000_000)
    canary.assert_absent(_all_text(info.value))
    header = sign(canary.value, b"{}", timestamp=1_000_000)
    with pytest.raises(ValueError) as info:
        verify_signature([key], header, b"{}", now=1_000_000)
    canary.assert_absent(_all_text(info.value))
