"""The one error type of ``check``'s inputs, in a module of its own.

:mod:`.inputs`, :mod:`.kustomize`, :mod:`.yamlsafe` and the rule modules all raise it;
keeping it here lets them depend on it without depending on one another.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(Exception):
    """The inputs cannot be evaluated (exit code 2).

    The message names the flag, file, line, object or field, never a value.
    """
