"""The Loader never echoes a value: not a ``NAME_FILE`` that is not an absolute path (most
often the secret itself, set in the wrong variable), not a provider's own exception text.

Checked with the canary in ``str``, ``repr``, the formatted traceback and every chained
exception, ``explain()`` as text and as JSON, and (by the ``canary`` fixture) the logs.
``test_bad_inputs.py`` holds the catalogue of bad inputs; these are the paths around it.
"""

from __future__ import annotations

import json
import traceback

import pytest

from agentos_secrets import (
    InvalidNameError,
    Loader,
    MissingSecretError,
    ProviderError,
    SecretError,
    SecretPathError,
    SecretValueError,
)
from agentos_secrets.sources import Chain

NAME = "AGENTOS_SERVICE_TOKEN"
FILE_VAR = NAME + "_FILE"


def _clean(exc: BaseException, canary) -> None:
    texts: list[object] = ["".join(traceback.format_exception(exc))]
    link: BaseException | None = exc
    while link is not None:
        texts += [str(link), repr(link), *map(repr, link.args)]
        link = link.__cause__ or link.__context__
    canary.assert_absent(*texts)


def _explained(loader: Loader, name: str, canary) -> str:
    explanation = loader.explain(name)
    text = str(explanation)
    canary.assert_absent(text, json.dumps(explanation.as_dict()), repr(explanation))
    return text


@pytest.mark.parametrize(
    "raised", [SecretValueError, MissingSecretError, InvalidNameError, SecretError]
)
def test_a_provider_raising_a_secret_error_with_the_value_is_wrapped(canary, raised):
    def provider(name: str) -> str:
        raise raised(f"the token {canary.value} was refused", variable=name)

    loader = Loader(env={}, provider=provider)
    with pytest.raises(ProviderError) as info:
        loader.get(NAME)
    assert raised.__name__ in str(info.value) and NAME in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None
    _clean(info.value, canary)
    text = _explained(loader, NAME, canary)
    assert "unusable" in text and raised.__name__ in text


def test_a_provider_failing_for_name_previous_in_verify(canary):
    def provider(name: str) -> str:
        if name.endswith("_PREVIOUS"):
            raise RuntimeError(canary.value)
        return canary.value

    loader = Loader(env={}, provider=provider)
    with pytest.raises(ProviderError) as info:
        loader.verify(NAME, canary.value)
    _clean(info.value, canary)


def test_a_shadowed_name_file_holding_the_value_is_not_echoed(canary):
    """NAME wins the conflict; the NAME_FILE it shadows holds the secret itself."""
    loader = Loader(env={NAME: "from-env", FILE_VAR: canary.value})
    text = _explained(loader, NAME, canary)
    assert "shadows: file <not an absolute path; not shown>" in text
    assert loader.require(NAME).reveal() == "from-env"


def test_name_file_holding_the_value_under_prefer_file(canary):
    loader = Loader(env={NAME: "from-env", FILE_VAR: canary.value}, on_conflict="prefer-file")
    with pytest.raises(SecretPathError) as info:
        loader.get(NAME)
    _clean(info.value, canary)
    text = _explained(loader, NAME, canary)
    assert "unusable" in text and FILE_VAR in text


def test_name_previous_file_holding_the_value(canary):
    loader = Loader(env={NAME: "current", f"{NAME}_PREVIOUS_FILE": canary.value})
    text = _explained(loader, NAME, canary)
    assert f"{NAME}_PREVIOUS_FILE" in text
    with pytest.raises(SecretPathError) as info:
        loader.verify(NAME, "current")
    _clean(info.value, canary)


def test_snapshot_with_name_file_holding_the_value(canary):
    loader = Loader(env={FILE_VAR: "  " + canary.value})
    with pytest.raises(SecretPathError) as info:
        loader.snapshot([NAME])
    _clean(info.value, canary)


def test_origins_and_locations_do_not_repr_a_relative_path(canary):
    chain = Chain(
        {NAME: "x", FILE_VAR: canary.value},
        (),
        None,
        "warn",
        strip=True,
        use_credentials_directory=False,
    )
    located = chain.locate(NAME, exhaustive=True)
    canary.assert_absent(repr(located), repr(located.shadowed), repr(located.chosen))
    assert located.shadowed[0].path == canary.value  # kept, only never shown
