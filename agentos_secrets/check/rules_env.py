"""Rules AS1xx: the environment and the secret files of one process.

Every AgentOS secret is resolved by :class:`agentos_secrets.Loader` over the checked
environment, exactly as the service would at start-up; the Loader's ``SecretError``
subclasses map one-to-one onto rule IDs, so a bad file is reported by the same code that
would refuse it in production. The Loader runs with ``on_conflict="error"`` because a
check must name an ambiguity the service would only warn about.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import SecretError
from ..files import shown_path
from ..loader import Loader
from ..secret import Secret
from . import quality, switches
from .findings import Finding, rule
from .inputs import Environment

__all__ = ["ERROR_RULES", "SECRET_NAMES", "check_environment", "finding_from_error"]

#: The AgentOS secrets, in the order they are reported.
SECRET_NAMES = ("AGENTOS_SERVICE_TOKEN", "AGENTOS_FED_SHARED_SECRET", "AGENTOS_SIGNING_KEY")
#: Which secrets are random strings judged by length and entropy.
_RANDOM_STRINGS = ("AGENTOS_SERVICE_TOKEN", "AGENTOS_FED_SHARED_SECRET")

#: ``SecretError.code`` -> rule ID. A code missing here is a bug (see the tests).
ERROR_RULES: dict[str, str] = {
    "file-not-found": "AS101",
    "bad-path": "AS101",
    "file-not-regular": "AS102",
    "file-permission": "AS103",
    "file": "AS103",
    "file-insecure": "AS104",
    "file-too-large": "AS105",
    "bad-value": "AS106",
    "bad-encoding": "AS106",
    "provider": "AS106",
    "invalid-name": "AS106",
    "secret-error": "AS106",
    "conflict": "AS107",
    "missing": "AS108",
}


def finding_from_error(exc: SecretError, source: str | None) -> Finding:
    """The finding for a Loader error: its message names variable and path, not value."""
    return Finding(
        rule(ERROR_RULES.get(exc.code, "AS106")),
        str(exc),
        variable=exc.variable,
        path=exc.path,
        source=source,
    )


def _resolve(
    loader: Loader, name: str, required: bool, source: str | None
) -> tuple[Secret | None, Finding | None]:
    try:
        secret = loader.require(name) if required else loader.get(name)
    except SecretError as exc:
        return None, finding_from_error(exc, source)
    return secret, None


def _source(secret: Secret) -> str:
    """Where the Loader found it (``env``, ``file``, ``directory``, ``provider``).

    Read with getattr: ``Secret`` sets its slots through descriptors, which type checkers
    do not see.
    """
    return str(getattr(secret, "source", ""))


def _template(name: str, secret: Secret, env: Environment, src: str | None) -> Finding:
    """Where a judged value lives: ``NAME_FILE`` and its path when it came from a file.

    The rule and message are filled in by ``_judge_value``.
    """
    if _source(secret) == "file":
        path = shown_path(env.variables.get(f"{name}_FILE", "").strip())
        return Finding(rule("AS110"), "", variable=f"{name}_FILE", path=path, source=src)
    return Finding(rule("AS110"), "", variable=name, source=src)


def _judge_value(name: str, secret: Secret, prod: bool, where: Finding) -> Iterator[Finding]:
    """At most one finding about the value itself: the first problem is the one to fix."""
    text = secret.reveal()
    problem: tuple[str, str | None] | None = None
    if prod:
        checks = [("AS110", quality.placeholder)]
        if name in _RANDOM_STRINGS:
            checks += [("AS111", quality.too_short), ("AS112", quality.low_entropy)]
        for rule_id, judge in checks:
            reason = judge(text)
            if reason:
                problem = (rule_id, reason)
                break
    if problem is None and name == "AGENTOS_SIGNING_KEY":
        reason = quality.signing_key_problem(secret.reveal_bytes())
        problem = ("AS115", reason) if reason else None
    if problem is not None:
        yield where._replace(rule=rule(problem[0]), message=f"{name} {problem[1]}")


def metrics_auth_problem(raw: str | None) -> str:
    """Why AGENTOS_METRICS_REQUIRE_AUTH is not exactly ``1``, and what each reader does
    with the value: the sidecar reads it with ``parse_bool``, the platform wants ``1``."""
    from ..booleans import BooleanSettingError, parse_bool

    if raw is None:
        return ("is unset: the sidecar leaves /metrics open and the platform refuses to "
                "start in prod")
    try:
        on = parse_bool("AGENTOS_METRICS_REQUIRE_AUTH", raw, default=False)
    except BooleanSettingError:
        return ("is not a boolean word (the value is not shown, see AS116): the sidecar "
                "fails closed and requires auth, the platform requires exactly 1 in prod")
    if not raw.strip():
        return ("is empty: the sidecar leaves /metrics open and the platform refuses to "
                "start in prod")
    shown = switches.bool_word(raw)
    if on:
        return (f"is {shown}: the sidecar reads it as on and requires auth, but the "
                "platform requires exactly 1 in prod and refuses to start")
    return (f"is {shown}: off for the sidecar (/metrics open) and not 1 for the "
            "platform, which refuses to start in prod")


def dev_headers_on(raw: str | None) -> bool:
    """Whether AGENTOS_ALLOW_DEV_HEADERS reads as on (a true word; ``1`` is what the
    platform refuses in prod, any other true word would turn them on for a ``parse_bool``
    reader). An unreadable word is AS116, not this."""
    from ..booleans import BooleanSettingError, parse_bool

    try:
        return parse_bool("AGENTOS_ALLOW_DEV_HEADERS", raw, default=False)
    except BooleanSettingError:
        return False


def _prod_guards(env: Environment) -> Iterator[Finding]:
    v = env.variables
    src = env.source
    if (v.get("AGENTOS_DEFAULT_TENANT") or "").strip():
        yield Finding(rule("AS120"), "AGENTOS_DEFAULT_TENANT is set in prod",
                      variable="AGENTOS_DEFAULT_TENANT", source=src)
    raw_headers = v.get("AGENTOS_ALLOW_DEV_HEADERS")
    if dev_headers_on(raw_headers):
        yield Finding(rule("AS121"),
                      f"AGENTOS_ALLOW_DEV_HEADERS is {switches.bool_word(raw_headers or '')}"
                      " (on) in prod", variable="AGENTOS_ALLOW_DEV_HEADERS", source=src)
    raw_auth = v.get("AGENTOS_METRICS_REQUIRE_AUTH")
    if raw_auth != "1":
        yield Finding(rule("AS122"),
                      f"AGENTOS_METRICS_REQUIRE_AUTH {metrics_auth_problem(raw_auth)}",
                      variable="AGENTOS_METRICS_REQUIRE_AUTH", source=src)
    federation = (v.get("AGENTOS_SERVICE") or "").strip().lower() == "federation"
    peers = (v.get("AGENTOS_PEERS_FILE") or "").strip()
    if federation or peers:
        problem = _unreadable(peers) if peers else "is unset"
        if problem:
            yield Finding(rule("AS123"), f"AGENTOS_PEERS_FILE {problem}",
                          variable="AGENTOS_PEERS_FILE",
                          path=shown_path(peers) if peers else None, source=src)


#: The platform's peers file is a short JSON list; anything larger is not one.
MAX_PEERS_FILE_BYTES = 1 << 20


def _unreadable(path: str) -> str | None:
    """Why the peers file cannot be read, or None. Read with the one bounded reader:
    a FIFO fails at once instead of hanging the check, ``/dev/zero`` does not grow it."""
    from ..errors import (
        SecretFileNotFoundError,
        SecretFileNotRegularError,
        SecretFilePermissionError,
        SecretFileTooLargeError,
        SecretPathError,
    )
    from ..files import read_bounded

    failure: str | None = None
    try:
        read_bounded(path, what="AGENTOS_PEERS_FILE", max_bytes=MAX_PEERS_FILE_BYTES)
    except SecretPathError:
        failure = ("is not an absolute path (the value is not shown): the platform would "
                   "resolve it against its working directory")
    except SecretFileNotFoundError:
        failure = "names a file that does not exist"
    except SecretFilePermissionError:
        failure = "names a file this process may not read"
    except SecretFileNotRegularError:
        failure = "names a directory, FIFO, socket or device, not a regular file"
    except SecretFileTooLargeError:
        failure = f"names a file larger than {MAX_PEERS_FILE_BYTES} bytes"
    except SecretError:
        failure = "cannot be read"
    return failure


def check_environment(env: Environment) -> list[Finding]:
    """All AS1xx findings for ``env`` (each secret resolved once through the Loader)."""
    prod = env.profile == "prod"
    src = env.source or "environment"
    loader = Loader(env=dict(env.variables), on_conflict="error")
    findings: list[Finding] = []
    current: dict[str, Secret] = {}
    for name in SECRET_NAMES:
        secret, problem = _resolve(loader, name, prod, src)
        if problem is not None:
            findings.append(problem)
            continue
        if secret is None:
            continue
        current[name] = secret
        if prod and _source(secret) == "env":
            findings.append(Finding(
                rule("AS109"), f"{name} comes from the environment, not from {name}_FILE",
                variable=name, source=src))
        findings.extend(_judge_value(name, secret, prod, _template(name, secret, env, src)))
        previous, problem = _resolve(loader, name + "_PREVIOUS", False, src)
        if problem is not None:
            findings.append(problem)
        elif previous is not None and previous == secret:
            findings.append(Finding(
                rule("AS114"), f"{name}_PREVIOUS equals the current value of {name}",
                variable=f"{name}_PREVIOUS", source=src))
    names = list(current)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if current[first] == current[second]:
                findings.append(Finding(
                    rule("AS113"), f"{first} and {second} hold the same value",
                    variable=f"{first},{second}", source=src))
    for problem in switches.problems(env.variables):
        findings.append(Finding(rule("AS116"), problem.message, variable=problem.variable,
                                source=src))
    if prod:
        findings.extend(_prod_guards(env))
    return findings

