"""pydantic-settings with the Loader's rules, and validation errors that never quote a secret."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agentos_secrets import ConflictError, Loader, SecretFileNotFoundError
from agentos_secrets.settings import LoaderSettingsSource, SecretSettings
from agentos_secrets.testing import AtomicWriter


def _secret_file(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def _all_text(error: ValidationError) -> str:
    return "\n".join(
        [str(error), repr(error), error.json(), repr(error.errors()), repr(error.__context__)]
    )


def test_fields_resolve_with_file_variants(tmp_path, canary, monkeypatch):
    token_file = _secret_file(tmp_path, "t", canary.value + "\n")
    monkeypatch.setenv("AGENTOS_SERVICE_TOKEN_FILE", token_file)
    monkeypatch.setenv("AGENTOS_SIGNING_KEY", "  signing-from-env  ")
    monkeypatch.setenv("PORT", "8081")

    class Settings(SecretSettings):
        agentos_service_token: SecretStr
        agentos_signing_key: str
        port: int = 1
        absent: str | None = None

    settings = Settings()
    assert settings.agentos_service_token.get_secret_value() == canary.value
    assert settings.agentos_signing_key == "signing-from-env"  # trimmed, as the Loader does
    assert settings.port == 8081
    assert settings.absent is None
    canary.assert_absent(repr(settings), str(settings), settings.model_dump_json())


def test_secret_directory_through_a_chosen_loader(tmp_path, canary):
    volume = AtomicWriter(tmp_path / "secrets")
    volume.write({"AGENTOS_FED_SHARED_SECRET": canary.value})

    class Settings(SecretSettings):
        secrets_loader = Loader(env={}, secret_dirs=[volume.target_dir])
        agentos_fed_shared_secret: SecretStr

    assert Settings().agentos_fed_shared_secret.get_secret_value() == canary.value
    volume.write({"AGENTOS_FED_SHARED_SECRET": canary.value + "-rotated"})
    assert Settings().agentos_fed_shared_secret.get_secret_value() == canary.value + "-rotated"


def test_model_secrets_dir_is_searched(tmp_path, canary, monkeypatch):
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    monkeypatch.delenv("DB_PASSWORD_FILE", raising=False)
    _secret_file(tmp_path, "DB_PASSWORD", canary.value)

    class Settings(SecretSettings):
        model_config = SettingsConfigDict(secrets_dir=str(tmp_path))
        db_password: SecretStr

    assert Settings().db_password.get_secret_value() == canary.value


def test_prefix_alias_and_constructor_arguments(tmp_path, canary):
    loader = Loader(
        env={
            "APP_TOKEN_FILE": _secret_file(tmp_path, "t", canary.value),
            "LEGACY_NAME": "from-alias",
        }
    )

    class Settings(SecretSettings):
        model_config = SettingsConfigDict(env_prefix="app_")
        secrets_loader = loader
        token: SecretStr
        other: str = Field(default="d", validation_alias=AliasChoices("LEGACY_NAME"))
        named: str = Field(default="d", alias="LEGACY_NAME")

    settings = Settings()
    assert settings.token.get_secret_value() == canary.value
    assert settings.named == "from-alias"
    assert Settings(token="given").token.get_secret_value() == "given"  # init wins


def test_conflict_and_unreadable_file_raise_loader_errors(tmp_path, canary):
    class Conflicting(SecretSettings):
        secrets_loader = Loader(
            env={"TOKEN": canary.value, "TOKEN_FILE": _secret_file(tmp_path, "t", "x")},
            on_conflict="error",
        )
        token: SecretStr

    with pytest.raises(ConflictError) as conflict:
        Conflicting()
    assert "TOKEN and TOKEN_FILE" in str(conflict.value)

    missing = str(tmp_path / "nope")

    class Unreadable(SecretSettings):
        secrets_loader = Loader(env={"TOKEN_FILE": missing})
        token: SecretStr

    with pytest.raises(SecretFileNotFoundError) as unreadable:
        Unreadable()
    assert "TOKEN_FILE" in str(unreadable.value) and missing in str(unreadable.value)
    canary.assert_absent(str(conflict.value), repr(conflict.value), str(unreadable.value))


def test_validation_error_never_contains_the_input(tmp_path, canary):
    class Settings(SecretSettings):
        secrets_loader = Loader(env={"PORT_FILE": _secret_file(tmp_path, "p", canary.value)})
        port: int

    with pytest.raises(ValidationError) as info:
        Settings()
    error = info.value
    assert error.errors()[0]["loc"] == ("port",)
    assert error.errors()[0]["type"] == "int_parsing"
    assert error.__context__ is None and error.__cause__ is None
    canary.assert_absent(_all_text(error))


def test_validator_messages_and_missing_fields_are_masked(tmp_path, canary):
    class Settings(SecretSettings):
        secrets_loader = Loader(env={"TOKEN": canary.value})
        token: str
        required_too: str

        @field_validator("token")
        @classmethod
        def reject(cls, value: str) -> str:
            raise ValueError(f"token {value} is not allowed")

    with pytest.raises(ValidationError) as info:
        Settings()
    kinds = {e["type"] for e in info.value.errors()}
    assert kinds == {"value_error", "missing"}
    canary.assert_absent(_all_text(info.value))


def test_plain_pydantic_leaks_which_is_why_the_base_class_masks(canary):
    """The control: without the mask, pydantic puts the input in json()."""

    class Plain(BaseSettings):
        model_config = SettingsConfigDict(hide_input_in_errors=True)
        port: int

    with pytest.raises(ValidationError) as info:
        Plain(port=canary.value)
    assert canary.value in info.value.json()
    info.value.__traceback__ = None  # the canary guard scans output; nothing was printed


def test_source_in_a_custom_source_order(tmp_path, canary, monkeypatch):
    monkeypatch.setenv("TOKEN_FILE", _secret_file(tmp_path, "t", canary.value))

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(hide_input_in_errors=True)
        token: SecretStr

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, LoaderSettingsSource(settings_cls)

    assert Settings().token.get_secret_value() == canary.value
    assert repr(LoaderSettingsSource(Settings)) == "LoaderSettingsSource(Settings)"


def test_import_agentos_secrets_does_not_load_pydantic():
    code = (
        "import sys, agentos_secrets; "
        "print(sorted(m for m in ('pydantic', 'pydantic_settings', 'pydantic_core') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    ).stdout.strip()
    assert out == "[]"
