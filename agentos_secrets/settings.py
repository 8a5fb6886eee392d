"""pydantic-settings with the Loader's rules: ``_FILE`` variants, secret directories,
conflicts, safe reading, and validation errors that never quote a secret.

pydantic-settings alone has no ``_FILE`` support, strips and caps nothing in its
``secrets_dir``, and puts the offending input in every ``ValidationError`` (its issues
256, 530, 937). Two pieces fix that:

* :class:`LoaderSettingsSource`, a settings source that resolves each field with
  :meth:`agentos_secrets.Loader.get`: the variable is ``env_prefix + field name``
  upper-cased (or the field's alias), so a field ``service_token`` reads
  ``SERVICE_TOKEN``, else ``SERVICE_TOKEN_FILE``, else the secret directories, else the
  provider. Loader errors (an unreadable ``NAME_FILE``, a conflict) propagate as they are:
  they name the variable and path, never the value.
* :class:`SecretSettings`, a ``BaseSettings`` base class that puts that source after the
  constructor arguments (in place of pydantic's env and secrets-dir sources, so one set of
  rules decides) and re-raises any ``ValidationError`` with every input replaced by a mask:
  ``str``, ``repr``, ``errors()`` and ``json()`` are all safe to log.

Fields may be typed ``SecretStr`` (recommended: pydantic masks it too) or ``str``; other
types (``int``, ``bool``) parse from the text as usual. Values are read once, when the
model is built: for live values keep the Loader and call ``get()``.

This is the only module that imports pydantic; ``import agentos_secrets`` does not load it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .loader import Loader

__all__ = ["LoaderSettingsSource", "SecretSettings", "mask_validation_error"]

_MASK = "**********"
# Error types whose message comes from user code (a validator's ValueError or assert) and
# may therefore quote the input.
_FREE_TEXT_TYPES = frozenset({"value_error", "assertion_error"})


class LoaderSettingsSource(PydanticBaseSettingsSource):
    """A settings source that resolves every field through a :class:`Loader`.

    :param loader: the Loader to use; by default one over ``os.environ`` whose secret
        directories are the model's ``secrets_dir`` setting, if any.
    """

    def __init__(self, settings_cls: type[BaseSettings], loader: Loader | None = None) -> None:
        super().__init__(settings_cls)
        if loader is None:
            secrets_dir = self.config.get("secrets_dir")
            if secrets_dir is None:
                dirs: list[Any] = []
            elif isinstance(secrets_dir, list | tuple):
                dirs = list(secrets_dir)
            else:
                dirs = [secrets_dir]
            loader = Loader(secret_dirs=dirs)
        self.loader = loader

    def variables(self, field: FieldInfo, field_name: str) -> tuple[list[str], bool]:
        """The secret names of a field, in order, and whether they are aliases.

        Its alias(es) when it has any (pydantic then expects the alias as the key), else
        ``env_prefix + name``, upper-cased unless ``case_sensitive=True``.
        """
        alias = field.validation_alias
        if isinstance(alias, str):
            return [alias], True
        if isinstance(alias, AliasChoices):
            names = [c for c in alias.choices if isinstance(c, str)]
            if names:
                return names, True
        if field.alias:
            return [field.alias], True
        name = f"{self.config.get('env_prefix', '')}{field_name}"
        return [name if self.config.get("case_sensitive", False) else name.upper()], False

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """(value, key, False): the key is the alias that answered, else the field name."""
        names, aliased = self.variables(field, field_name)
        for name in names:
            secret = self.loader.get(name)
            if secret is not None:
                return secret.reveal(), (name if aliased else field_name), False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                data[key] = value
        return data

    def __repr__(self) -> str:
        return f"LoaderSettingsSource({self.settings_cls.__name__})"


def mask_validation_error(error: ValidationError) -> ValidationError:
    """The same errors (types, locations, messages) with every input replaced by a mask.

    Messages written by validators (``value_error``, ``assertion_error``) are withheld
    too, since they may quote what they reject.
    """
    details: list[InitErrorDetails] = []
    for item in error.errors(include_url=False):
        kind = item["type"]
        error_type: str | PydanticCustomError = kind
        if kind in _FREE_TEXT_TYPES:
            error_type = PydanticCustomError(
                kind, "invalid value (the validator's message is withheld: it may quote it)"
            )
        detail: InitErrorDetails = {"type": error_type, "loc": item["loc"], "input": _MASK}
        if "ctx" in item and kind not in _FREE_TEXT_TYPES:
            detail["ctx"] = item["ctx"]
        details.append(detail)
    try:
        return ValidationError.from_exception_data(error.title, details, hide_input=True)
    except (KeyError, TypeError, ValueError):
        # An error type pydantic cannot rebuild: keep only where and what kind.
        generic: list[InitErrorDetails] = [
            {
                "type": PydanticCustomError(str(item["type"]), "invalid value"),
                "loc": item["loc"],
                "input": _MASK,
            }
            for item in error.errors(include_url=False)
        ]
        return ValidationError.from_exception_data(error.title, generic, hide_input=True)


class SecretSettings(BaseSettings):
    """``BaseSettings`` whose fields resolve with the Loader's rules and whose
    validation errors never contain an input.

    Set ``secrets_loader`` on a subclass to choose the Loader (for example one with
    ``secret_dirs=["/etc/agentos/secrets"]``); by default a Loader over ``os.environ``
    searching the model's ``secrets_dir``.
    """

    model_config = SettingsConfigDict(hide_input_in_errors=True, extra="ignore")

    secrets_loader: ClassVar[Loader | None] = None

    def __init__(self, **values: Any) -> None:
        failure: ValidationError | None = None
        try:
            super().__init__(**values)
        except ValidationError as exc:
            failure = mask_validation_error(exc)
        if failure is not None:
            # Raised outside the except block: the original error, which holds the
            # inputs, is not even kept as __context__.
            raise failure

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, LoaderSettingsSource(settings_cls, cls.secrets_loader)
