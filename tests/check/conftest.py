"""Fixtures for the ``check`` tests: run the CLI in-process, build env variants."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from check_lib import ENV_VARIANTS, Run, parse_env_lines

from agentos_secrets.check.cli import main


@pytest.fixture
def run_check() -> Callable[..., Run]:
    """Run ``agentos-secrets check`` in-process and capture what a user would see.

    The output is echoed afterwards, so the ``canary`` fixture's capture scans it too.
    """

    def run(*argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        sys.stdout.write(out.getvalue())
        sys.stderr.write(err.getvalue())
        return Run(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def env_variant(tmp_path: Path) -> Callable[..., Path]:
    """Copy the env library to tmp, apply variant ``name`` (or none), return the env file.

    ``extra`` adds variables (``@DIR@`` expanded) after the variant's overrides.
    """

    def build(name: str | None = None, extra: dict[str, str] | None = None) -> Path:
        workdir = tmp_path / f"envlib-{len(list(tmp_path.glob('envlib-*')))}"
        shutil.copytree(ENV_VARIANTS, workdir)
        for file in (workdir / "files").iterdir():
            file.chmod(0o600)
        variables = parse_env_lines((workdir / "good.env").read_text())
        if name is not None:
            variant = workdir / f"{name}.env"
            variables.update(parse_env_lines(variant.read_text()))
            for match in re.finditer(r"^# chmod: (\S+) ([0-7]+)$", variant.read_text(), re.M):
                os.chmod(workdir / match.group(1), int(match.group(2), 8))
        variables.update(extra or {})
        lines = [
            f"{k}={v.replace('@DIR@', str(workdir))}"
            for k, v in variables.items()
            if v != "@UNSET@"
        ]
        env_file = workdir / "checked.env"
        env_file.write_text("\n".join(lines) + "\n")
        return env_file

    return build
