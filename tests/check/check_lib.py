"""The variant library's layout and small helpers shared by the check tests.

``variants/manifests/good`` and one kustomization per broken variant (``# expect: ASxxx``
and ``# profile:`` in its header); ``variants/env/good.env`` and one override file per
broken environment (``@DIR@`` is the copied library, ``@UNSET@`` removes a variable,
``# chmod: FILE MODE`` sets a mode).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

VARIANTS = Path(__file__).parent / "variants"
MANIFEST_VARIANTS = VARIANTS / "manifests"
ENV_VARIANTS = VARIANTS / "env"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)

    @property
    def rule_ids(self) -> set[str]:
        return {f["ruleId"] for f in self.json["findings"]}


def header(path: Path, key: str) -> str | None:
    match = re.search(rf"^# {key}: (.+)$", path.read_text(), re.MULTILINE)
    return match.group(1).strip() if match else None


def manifest_variants() -> list[str]:
    return sorted(p.name for p in MANIFEST_VARIANTS.iterdir() if p.name != "good")


def env_variants() -> list[str]:
    return sorted(p.stem for p in ENV_VARIANTS.glob("*.env") if p.stem != "good")


def parse_env_lines(text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            result[key] = value
    return result
