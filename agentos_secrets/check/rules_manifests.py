"""Rules AS2xx: the rendered manifests, workload by workload.

The questions are the ones that decide whether a rotation ever reaches the app: is the
Secret mounted as files (not env, not subPath), does every ``*_FILE`` point into that
mount at a key that exists, is the sidecar there with what its action needs. In prod the
platform's own start-up guards are checked on each app container's resolved environment.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping

from ..files import shown_path
from . import quality, switches
from .findings import Finding, rule
from .inputs import Manifests, normalize_profile
from .k8s import (
    SIDECAR_NAME,
    WORKLOAD_KINDS,
    Container,
    Workload,
    configmap,
    container_env,
    grants,
    is_agentos_secret,
    secret_keys,
    secret_values,
    sidecar_action,
    sidecar_flag,
    sidecar_flag_source,
)
from .rules_env import SECRET_NAMES, dev_headers_on, metrics_auth_problem

__all__ = ["check_manifests", "relevant"]

#: ``NAME_FILE`` and ``NAME_PREVIOUS_FILE`` of every AgentOS secret.
_FILE_VARS = {f"{n}_FILE": n for n in SECRET_NAMES} | {
    f"{n}_PREVIOUS_FILE": n for n in SECRET_NAMES
}


#: The secrets themselves (and their previous values), which must never be env values.
_SECRET_VARS = set(SECRET_NAMES) | {f"{n}_PREVIOUS" for n in SECRET_NAMES}


class _Ctx:
    """One workload being checked, and the helpers to report on it."""

    def __init__(self, workload: Workload, manifests: Manifests, profile: str) -> None:
        self.w = workload
        self.m = manifests
        self.profile = profile
        self.ns = workload.obj.namespace

    def finding(self, rule_id: str, message: str, field: str) -> Finding:
        return Finding(rule(rule_id), message, obj=self.w.ref, field=field,
                       source=self.m.source, line=self.w.obj.line)


def _mount_rules(c: _Ctx, container: Container) -> Iterator[Finding]:
    for mount in container.mounts():
        volume = str(mount.get("name") or "")
        sv = c.w.secret_volumes.get(volume)
        if sv is None:
            continue
        field = f"{container.field}.volumeMounts[{volume}]"
        if mount.get("subPath") or mount.get("subPathExpr"):
            yield c.finding("AS203", f"container {container.name} mounts Secret {sv.secret} "
                            "with subPath: it will never see a rotation", field + ".subPath")
        if mount.get("readOnly") is not True:
            yield c.finding("AS204", f"container {container.name} mounts Secret {sv.secret} "
                            "without readOnly: true", field + ".readOnly")


def _env_secret_rules(c: _Ctx, container: Container) -> Iterator[Finding]:
    for i, source in enumerate(container.body.get("envFrom") or []):
        ref = (source or {}).get("secretRef") if isinstance(source, Mapping) else None
        if isinstance(ref, Mapping):
            yield c.finding("AS205", f"container {container.name} takes Secret "
                            f"{ref.get('name')} as environment variables (envFrom)",
                            f"{container.field}.envFrom[{i}].secretRef")
    for var in container.body.get("env") or []:
        if not isinstance(var, Mapping):
            continue
        name = str(var.get("name") or "")
        if name in _SECRET_VARS and var.get("value"):
            yield c.finding("AS205", f"container {container.name} sets {name} to a literal "
                            "value in the manifest (committed with it, never rotates)",
                            f"{container.field}.env[{name}].value")
            continue
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if isinstance(ref, Mapping):
            yield c.finding("AS205", f"container {container.name} takes {var.get('name')} "
                            f"from Secret {ref.get('name')} key {ref.get('key')} as an "
                            "environment variable",
                            f"{container.field}.env[{var.get('name')}].valueFrom.secretKeyRef")


def _file_var_rules(
    c: _Ctx, container: Container, env: Mapping[str, str | None]
) -> Iterator[Finding]:
    for var, secret_name in _FILE_VARS.items():
        path = env.get(var)
        if not path:
            continue
        field = f"{container.field}.env[{var}]"
        mount = c.w.mount_for(container, path)
        sv = c.w.secret_volumes.get(str(mount.get("name"))) if mount else None
        if mount is None or sv is None or not is_agentos_secret(sv.secret):
            got = "no mounted volume" if mount is None else (
                f"volume {mount.get('name')}, which is not Secret agentos-secrets")
            yield c.finding("AS206", f"{var} points at {shown_path(path)}, inside {got}",
                            field)
            continue
        if mount.get("subPath") or mount.get("subPathExpr"):
            continue  # AS203 already says it; the key cannot be judged through a subPath
        relative = posixpath.relpath(posixpath.normpath(path), str(mount.get("mountPath")))
        if sv.items is not None:
            key = sv.items.get(relative)
            if key is None:
                yield c.finding("AS207", f"{var} points at {relative} in volume {sv.name}, "
                                "whose items do not project that path", field)
                continue
        else:
            key = relative
        keys = secret_keys(c.m, sv, c.ns)
        if "/" in key or (keys is not None and key not in keys):
            yield c.finding("AS207", f"{var} points at key {key} (for {secret_name}), which "
                            f"{sv.kind} {sv.secret} does not have", field)


#: ``agentos-secrets rotate`` reads ``/status`` on the port this pod template annotation
#: names, else the sidecar's port named ``metrics``, else its first port, else 9095.
STATUS_PORT_ANNOTATION = "rotate.agentos.dev/status-port"
DEFAULT_LISTEN_PORT = 9095
_PORT = re.compile(r"[0-9]{1,5}")


def _rotate_port(c: _Ctx, sidecar: Container) -> tuple[int, str]:
    """The port ``rotate`` will read ``/status`` on, and where that choice comes from
    (the same order as ``agentos_secrets.rotate``'s discovery)."""
    override = c.w.template_annotations.get(STATUS_PORT_ANNOTATION)
    # ASCII digits only: str.isdigit() accepts "²", which int() then refuses.
    if isinstance(override, str) and _PORT.fullmatch(override) and 0 < int(override) < 65536:
        return int(override), f"annotation {STATUS_PORT_ANNOTATION}"
    ports = [p for p in sidecar.body.get("ports") or [] if isinstance(p, Mapping)]
    for port in ports:
        if port.get("name") == "metrics" and isinstance(port.get("containerPort"), int):
            return int(port["containerPort"]), "its port named metrics"
    if ports and isinstance(ports[0].get("containerPort"), int):
        return int(ports[0]["containerPort"]), "its first port"
    return DEFAULT_LISTEN_PORT, "the default"


def _status_problem(c: _Ctx, sidecar: Container) -> str | None:
    """Why ``rotate`` cannot read this sidecar's ``/status`` through ``pods/proxy``."""
    env = container_env(sidecar, c.m, c.ns)
    raw, from_env = sidecar_flag_source(sidecar, env, "listen")
    if from_env and raw is not None and not raw.strip():
        raw = None  # an empty variable leaves the default
    if raw is None and from_env is False and "AGENTOS_SIDECAR_LISTEN" in env:
        return None  # set from a source this check cannot see
    listen = f"0.0.0.0:{DEFAULT_LISTEN_PORT}" if raw is None else raw.strip()
    if listen.lower() in ("", "off", "none"):
        return "its --listen is off: nothing serves /status"
    host, sep, port_text = listen.rpartition(":")
    if not sep or not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        return None  # the sidecar refuses such a --listen itself, at start
    host = host.strip("[]").lower()
    if host == "localhost" or host.startswith("127.") or host == "::1":
        return "its --listen is on loopback only; pods/proxy connects to the pod IP"
    port = int(port_text)
    declared = {int(p["containerPort"]) for p in sidecar.body.get("ports") or []
                if isinstance(p, Mapping) and isinstance(p.get("containerPort"), int)}
    if port not in declared:
        return f"it does not declare its --listen port {port} in ports"
    wanted, why = _rotate_port(c, sidecar)
    if wanted != port:
        return f"rotate reads port {wanted} ({why}) but --listen is port {port}"
    return None


def _status_field(c: _Ctx, sidecar: Container, problem: str) -> str:
    """Where to fix AS213: the ``--listen`` that is off or on loopback (when set), else
    the sidecar's ``ports``."""
    if "--listen" in problem and ("off" in problem or "loopback" in problem):
        raw, from_env = sidecar_flag_source(sidecar, container_env(sidecar, c.m, c.ns),
                                            "listen")
        if raw is not None:
            return _flag_field(sidecar, "listen", from_env=from_env)
    return sidecar.field + ".ports"


def _sidecar_rules(c: _Ctx, sidecars: list[Container]) -> Iterator[Finding]:
    uses_secret = bool(c.w.agentos_volumes())
    if not sidecars:
        if uses_secret:
            yield c.finding("AS201", "the pod mounts Secret agentos-secrets but has no "
                            f"{SIDECAR_NAME} container", "spec.template.spec.containers")
        return
    for sidecar in sidecars:
        if sidecar.init and sidecar.body.get("restartPolicy") != "Always":
            yield c.finding("AS202", f"{SIDECAR_NAME} is an init container without "
                            "restartPolicy: Always", sidecar.field + ".restartPolicy")
        status = _status_problem(c, sidecar) if c.w.agentos_secret_volumes() else None
        if status:
            yield c.finding("AS213", f"agentos-secrets rotate cannot read the /status of "
                            f"{SIDECAR_NAME}: {status}", _status_field(c, sidecar, status))
        mounted = {str(m.get("name")) for m in sidecar.mounts()}
        if not mounted & c.w.agentos_volumes():
            yield c.finding("AS208", f"{SIDECAR_NAME} does not mount a volume of Secret "
                            "agentos-secrets", sidecar.field + ".volumeMounts")
        env = container_env(sidecar, c.m, c.ns)
        yield from _sidecar_setting_rules(c, sidecar, env)
        action = sidecar_action(sidecar, env)
        if action in ("signal", "restart") and c.w.pod.get("shareProcessNamespace") is not True:
            yield c.finding("AS210", f"the sidecar's {action} action cannot see the app's "
                            "process without shareProcessNamespace: true",
                            "spec.template.spec.shareProcessNamespace")
        if action == "rollout":
            problem = _rollout_problem(c, sidecar)
            if problem:
                yield c.finding("AS209", problem, "spec.template.spec.serviceAccountName")


def _sidecar_setting_rules(
    c: _Ctx, sidecar: Container, env: Mapping[str, str | None]
) -> Iterator[Finding]:
    """AS212 for a sidecar choice (``--action``, ``--log-format``, ``--log-level``) or its
    ``--send-fingerprint`` switch that the sidecar would refuse or could not read."""
    from ..booleans import BooleanSettingError, parse_bool

    numbers: dict[str, float] = {}
    order_field = f"{sidecar.field}.args"
    for flag in (*switches.CHOICES, *switches.NUMBERS):
        raw, from_env = sidecar_flag_source(sidecar, env, flag)
        problem = None if raw is None else (
            switches.sidecar_choice_problem(flag, raw, from_env=from_env)
            or switches.sidecar_number_problem(flag, raw, from_env=from_env))
        if problem:
            yield c.finding("AS212", f"{SIDECAR_NAME}: {problem}",
                            _flag_field(sidecar, flag, from_env=from_env))
        elif raw is not None and flag in switches.NUMBERS and raw.strip():
            value = switches.sidecar_number(flag, raw)
            if value is not None:
                numbers[flag] = value
                order_field = _flag_field(sidecar, flag, from_env=from_env)
    order = switches.sidecar_order_problem(numbers)
    if order:
        yield c.finding("AS212", f"{SIDECAR_NAME}: {order}", order_field)
    raw, from_env = sidecar_flag_source(sidecar, env, "listen")
    problem = None if raw is None else switches.sidecar_listen_problem(raw, from_env=from_env)
    if problem:
        yield c.finding("AS212", f"{SIDECAR_NAME}: {problem}",
                        _flag_field(sidecar, "listen", from_env=from_env))
    raw, from_env = sidecar_flag_source(sidecar, env, "send-fingerprint")
    if raw is not None and not from_env:  # the environment is judged with the others
        try:
            parse_bool("--send-fingerprint", raw, default=False)
        except BooleanSettingError:
            yield c.finding("AS212", f"{SIDECAR_NAME}: --send-fingerprint is not a boolean "
                            "(the value is not shown): "
                            + switches.BOOLEANS["AGENTOS_SIDECAR_SEND_FINGERPRINT"],
                            f"{sidecar.field}.args")


def _flag_field(sidecar: Container, flag: str, *, from_env: bool) -> str:
    """The field that sets a sidecar flag: its ``env`` entry, or the ``args`` (or
    ``command``) list that holds it."""
    if from_env:
        return f"{sidecar.field}.env[AGENTOS_SIDECAR_{flag.upper().replace('-', '_')}]"
    for key in ("args", "command"):
        items = sidecar.body.get(key) or []
        if any(a == f"--{flag}" or str(a).startswith(f"--{flag}=") for a in items):
            return f"{sidecar.field}.{key}"
    return f"{sidecar.field}.args"


_DEFAULT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path


def _token_problem(c: _Ctx, sidecar: Container, sa: str) -> str | None:
    """Why the sidecar has no API token, or None.

    The token is there when automounting is on (the pod's field wins over the
    ServiceAccount's), or when the sidecar mounts a projected serviceAccountToken at the
    path it reads (``--token-file``, default the standard automount path) - the safer
    form, since the app container then never holds the token.
    """
    env = container_env(sidecar, c.m, c.ns)
    token_file = sidecar_flag(sidecar, env, "token-file") or _DEFAULT_TOKEN
    for mount in sidecar.mounts():
        volume = c.w.volumes.get(str(mount.get("name")), {})
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken") if isinstance(source, Mapping) else None
            if isinstance(token, Mapping):
                path = posixpath.join(str(mount.get("mountPath")), str(token.get("path")))
                if posixpath.normpath(path) == posixpath.normpath(token_file):
                    return None
    automount = c.w.pod.get("automountServiceAccountToken")
    if automount is None:
        account = c.m.find("ServiceAccount", sa, c.ns)
        if account is not None:
            automount = account.body.get("automountServiceAccountToken")
    if automount is False:
        return (f"no API token reaches the sidecar: automounting is off and no projected "
                f"serviceAccountToken is mounted at {shown_path(token_file)}")
    return None


def _rollout_problem(c: _Ctx, sidecar: Container) -> str | None:
    pod = c.w.pod
    sa = str(pod.get("serviceAccountName") or pod.get("serviceAccount") or "default")
    if c.w.obj.kind != "Deployment":
        return f"the rollout action patches Deployments; this is a {c.w.obj.kind}"
    if sa != "default" and c.m.find("ServiceAccount", sa, c.ns) is None:
        return f"ServiceAccount {sa} is not in the manifests: pods cannot be created"
    if not grants(c.m, sa, c.ns, group="apps", resource="deployments",
                  verbs={"get", "patch"}, name=c.w.obj.name):
        return (f"no RoleBinding gives ServiceAccount {sa} get and patch on deployment "
                f"{c.w.obj.name}")
    return _token_problem(c, sidecar, sa)


def _prod_rules(c: _Ctx, container: Container, env: Mapping[str, str | None]) -> Iterator[Finding]:
    field = f"{container.field}.env"
    own = env.get("AGENTOS_PROFILE")
    container_profile = normalize_profile(own)
    if c.profile == "prod" and container_profile != "prod":
        shown = "unset (dev)" if own is None else "not prod"
        yield c.finding("AS225", f"container {container.name}: AGENTOS_PROFILE is {shown}",
                        f"{field}[AGENTOS_PROFILE]")
    if "prod" not in (c.profile, container_profile):
        return
    if (env.get("AGENTOS_DEFAULT_TENANT") or "").strip():
        yield c.finding("AS220", f"container {container.name} sets AGENTOS_DEFAULT_TENANT",
                        f"{field}[AGENTOS_DEFAULT_TENANT]")
    headers = env.get("AGENTOS_ALLOW_DEV_HEADERS")
    if dev_headers_on(headers):
        yield c.finding("AS221", f"container {container.name} sets AGENTOS_ALLOW_DEV_HEADERS "
                        f"to {switches.bool_word(headers or '')} (on)",
                        f"{field}[AGENTOS_ALLOW_DEV_HEADERS]")
    auth = env.get("AGENTOS_METRICS_REQUIRE_AUTH")
    if "AGENTOS_METRICS_REQUIRE_AUTH" not in env or (auth is not None and auth != "1"):
        yield c.finding("AS222", f"container {container.name}: AGENTOS_METRICS_REQUIRE_AUTH "
                        + metrics_auth_problem(auth), f"{field}[AGENTOS_METRICS_REQUIRE_AUTH]")
    federation = (env.get("AGENTOS_SERVICE") or "").strip().lower() == "federation"
    if federation:
        problem = _peers_problem(c, container, env)
        if problem:
            yield c.finding("AS223", f"container {container.name}: AGENTOS_PEERS_FILE {problem}",
                            f"{field}[AGENTOS_PEERS_FILE]")


def _peers_problem(
    c: _Ctx, container: Container, env: Mapping[str, str | None]
) -> str | None:
    path = env.get("AGENTOS_PEERS_FILE")
    if path is None and "AGENTOS_PEERS_FILE" in env:
        return None  # set from a source this check cannot see (a Secret, downward API)
    if not path:
        return "is unset"
    mount = c.w.mount_for(container, path)
    if mount is None:
        return f"({shown_path(path)}) is not inside any mounted volume"
    volume = c.w.volumes.get(str(mount.get("name")), {})
    ref = volume.get("configMap")
    if isinstance(ref, Mapping) and not (mount.get("subPath") or mount.get("subPathExpr")):
        data = configmap(c.m, str(ref.get("name")), c.ns)
        relative = posixpath.relpath(posixpath.normpath(path), str(mount.get("mountPath")))
        items = {str(i.get("path")): str(i.get("key")) for i in ref.get("items") or []}
        key = items.get(relative, None if items else relative)
        if data is not None and (key is None or key not in data):
            return (f"({shown_path(path)}) names a file ConfigMap {ref.get('name')} does not "
                    "provide")
    return None


def _image_rule(c: _Ctx, container: Container) -> Iterator[Finding]:
    image = str(container.body.get("image") or "")
    if "@sha256:" in image:
        return
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if tag in ("", "latest"):
        yield c.finding("AS224", f"container {container.name} uses image {image or '(none)'} "
                        "without a pinned tag", f"{container.field}.image")


def _workload_findings(c: _Ctx) -> Iterator[Finding]:
    containers = list(c.w.containers())
    sidecars = [x for x in containers if x.name == SIDECAR_NAME]
    for container in containers:
        yield from _mount_rules(c, container)
        yield from _env_secret_rules(c, container)
        if c.profile == "prod":
            yield from _image_rule(c, container)
        env = container_env(container, c.m, c.ns)
        yield from _file_var_rules(c, container, env)
        for problem in switches.problems(env):
            yield c.finding("AS212", f"container {container.name}: {problem.message}",
                            f"{container.field}.env[{problem.variable}]")
        if container.name == SIDECAR_NAME or container.init:
            continue
        if any(k.startswith("AGENTOS_") for k in env):
            yield from _prod_rules(c, container, env)
    yield from _sidecar_rules(c, sidecars)


def _secret_object_findings(manifests: Manifests, profile: str) -> Iterator[Finding]:
    for obj in manifests.of_kind("Secret"):
        if not is_agentos_secret(obj.name):
            continue
        if obj.body.get("immutable") is True:
            yield Finding(rule("AS211"), f"Secret {obj.name} is immutable", obj=obj.ref,
                          field="immutable", source=manifests.source, line=obj.line)
        if profile != "prod":
            continue
        for key, value in secret_values(obj).items():
            if value is None:
                continue
            reason = quality.placeholder(value.decode("utf-8", "replace"))
            if reason:
                string_data = obj.body.get("stringData") or {}
                where = "stringData" if key in string_data else "data"
                yield Finding(rule("AS226"), f"key {key} of Secret {obj.name} {reason}",
                              obj=obj.ref, field=f"{where}[{key}]",
                              source=manifests.source, line=obj.line)


def relevant(manifests: Manifests) -> bool:
    """Whether any rule has something to look at: a workload or the AgentOS Secret."""
    return any(manifests.of_kind(*WORKLOAD_KINDS)) or any(
        is_agentos_secret(o.name) for o in manifests.of_kind("Secret")
    )


def check_manifests(manifests: Manifests, profile: str) -> list[Finding]:
    """All AS2xx findings for the objects of ``manifests`` checked as ``profile``."""
    findings: list[Finding] = list(_secret_object_findings(manifests, profile))
    for obj in manifests.of_kind(*WORKLOAD_KINDS):
        findings.extend(_workload_findings(_Ctx(Workload(obj), manifests, profile)))
    return findings
