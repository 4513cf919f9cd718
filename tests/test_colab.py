"""The Colab edition (tools/colab): the converter on small fixtures, and every chapter's notebook run as on Colab.

The unit tests convert small MyST snippets with made-up build records and check what Colab would show. The tests
marked ``colab`` (``make test-colab``, after the site build and the conversion) check the real notebooks:

* each is executed top to bottom in ``.venv-colab``, a virtual environment holding only ``pip install .`` (lmlab
  with the dependencies it declares) and a kernel, with ``google.colab`` importable and imported at start-up as on
  Colab, and the network guard on. Its install cell really runs: ``make test-colab`` uninstalls lmlab first, and git
  is told to fetch the repository URL from a snapshot of this checkout, so the cell installs lmlab from the URL in
  ``_config.yml`` without the network;
* each notebook's Markdown holds no MyST syntax that Colab would show as text.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import subprocess

import nbformat
import pytest
import yaml

from tools.colab import convert as cv
from tools.colab.leftovers import leftovers

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB = ROOT / "_build" / "colab"
VENV = ROOT / ".venv-colab"
STUB = ROOT / "tools" / "colab" / "stub"
NETGUARD = ROOT / "tests" / "netguard"
SITE = "https://example.org/book/"


# ---------------------------------------------------------------------------------------------------------------
# The converter, on fixtures


def chapter(tmp_path: pathlib.Path, body: str, glue: dict | None = None, refs: list | None = None) -> cv.Chapter:
    md = tmp_path / "ch.md"
    md.write_text(body, encoding="utf8")
    page = cv.PageRefs(
        docname="book/ch",
        url=SITE + "ch.html",
        refs=refs or [],
        labels={
            "ch-fig": {"id": "ch-fig", "title": "", "number": "3"},
            "ch-ex": {"id": "ch-ex", "title": "", "number": "2"},
            "ch-sec": {"id": "ch-sec", "title": "A section", "number": None},
        },
        equations={"ch-eq": 7},
    )
    return cv.Chapter(md=md, glue=glue or {}, refs=page, parser=cv.md_parser(), repo_url="https://github.com/o/r")


FRONT = "---\nkernelspec:\n  name: python3\n  display_name: Python 3\n  language: python\n---\n\n"
INSTALL = (
    "```{code-cell} ipython3\n:tags: [remove-cell]\n\n# Install lmlab on Colab.\nimport sys\n\n"
    'if "google.colab" in sys.modules:\n    %pip install --quiet "lmlab @ git+https://github.com/o/r"\n```\n\n'
)


def test_glue_roles_become_the_built_values(tmp_path: pathlib.Path) -> None:
    glue = {"ch_x": {"text/plain": "0.123456"}, "ch_t": {"text/plain": "'66 200'"}}
    c = chapter(tmp_path, "", glue=glue)
    out = c.markdown("The value {glue:text}`ch_x:.2f` and {glue:text}`ch_t`, not `{glue:text}` in code.\n")
    assert out.strip() == "The value 0.12 and 66 200, not `{glue:text}` in code."
    c.glue = {}
    with pytest.raises(cv.ConversionError, match="ch_x"):
        c.markdown("{glue:text}`ch_x`\n")


def test_references_read_as_on_the_website(tmp_path: pathlib.Path) -> None:
    refs = [
        {"domain": "cite", "type": "p", "target": "k", "explicit": False, "markdown": "\\[[A, 2020](u1)\\]"},
        {"domain": "math", "type": "eq", "target": "ch-eq", "explicit": False, "markdown": "[(7)](u2)"},
        {"domain": "std", "type": "ref", "target": "ch-sec", "explicit": False, "markdown": "[A section](u3)"},
    ]
    c = chapter(tmp_path, "", refs=refs)
    out = c.markdown("See {cite}`k`, {eq}`ch-eq` and {ref}`this part <ch-sec>`; also {ref}`ch-sec`.\n")
    assert out.strip() == "See \\[[A, 2020](u1)\\], [(7)](u2) and [this part](u3); also [A section](u3)."
    with pytest.raises(cv.ConversionError, match="numref"):
        c.markdown("{numref}`ch-missing`\n")


def test_blocks_equations_exercises_solutions_admonitions(tmp_path: pathlib.Path) -> None:
    c = chapter(tmp_path, "")
    src = (
        "(ch-sec)=\n## A section\n\n```{math}\n:label: ch-eq\na = b\n```\n\n$$ c = d $$ (ch-eq)\n\n"
        ":::{admonition} What you will be able to do\n- derive $a$\n:::\n\n"
        "````{exercise}\n:label: ch-ex\n\nProve it.\n````\n\n"
        "````{solution} ch-ex\n:class: dropdown\n\nIt holds.\n````\n"
    )
    out = c.markdown(src)
    assert "(ch-sec)=" not in out and "## A section" in out
    assert out.count("\\tag{7}") == 2 and "$$\na = b \\tag{7}\n$$" in out
    assert "> **What you will be able to do**\n>\n> - derive $a$" in out
    assert "#### Exercise 2\n\nProve it." in out
    assert "<details>\n<summary>Solution to Exercise 2</summary>\n\nIt holds.\n\n</details>" in out
    assert leftovers(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(out)])) == []
    with pytest.raises(cv.ConversionError, match="mystery"):
        c.markdown("```{mystery}\nx\n```\n")


def test_notebook_cells_folded_linked_and_pinned(tmp_path: pathlib.Path) -> None:
    body = (
        FRONT + "# The title\n\n" + INSTALL + "```{code-cell} ipython3\n:tags: [remove-input]\n\nx = 1\n```\n\n"
        "```{code-cell} ipython3\ny = 2\n```\n\n"
        "```{solution-start} ch-ex\n:class: dropdown\n```\n\nThe reasoning.\n\n"
        "```{code-cell} ipython3\nz = 3\n```\n\n"
        "```{solution-end}\n```\n\nAfter.\n"
    )
    c = chapter(tmp_path, body)
    c.ref = "abc123"
    nb = c.notebook()
    intro, title, install, hidden, shown, sol_md, sol_code, after = nb.cells
    assert intro.cell_type == "markdown" and SITE + "ch.html" in intro.source and "The title" in intro.source
    assert install.source.startswith('#@title Install lmlab on Colab. { display-mode: "form" }\nimport sys\n')
    assert '"lmlab @ git+https://github.com/o/r@abc123"' in install.source
    assert hidden.source.startswith("#@title ") and hidden.metadata["cellView"] == "form"
    assert shown.source == "y = 2" and "cellView" not in shown.metadata
    assert sol_md.source == "<details>\n<summary>Solution to Exercise 2</summary>\n\nThe reasoning.\n\n</details>"
    assert sol_code.source.startswith("#@title Solution to Exercise 2")
    assert after.source == "After."
    c.repo_url = "https://github.com/other/repo"
    with pytest.raises(cv.ConversionError, match="install"):
        c.notebook()


def test_glued_figure_becomes_an_attachment(tmp_path: pathlib.Path) -> None:
    glue = {"ch_fig": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
    c = chapter(tmp_path, "", glue=glue)
    cell = c.markdown_cell("```{glue:figure} ch_fig\n:name: ch-fig\n\nThe caption.\n```\n")
    assert cell is not None
    assert cell.source == "![ch_fig](attachment:ch_fig.png)\n\n**Fig. 3.** The caption."
    assert cell.attachments == {"ch_fig.png": {"image/png": "iVBORw0KGgo="}}


def test_leftover_scan_names_the_cell_and_text() -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("Clean $x$ text with `{code}` in code."),
            nbformat.v4.new_markdown_cell("A {cite}`k` role.\n\n(label)=\n\n```{note}\nx\n```"),
            nbformat.v4.new_markdown_cell("<details>\n<summary>{eq}`x`</summary>\n</details>"),
        ]
    )
    found = leftovers(nb)
    assert {i for i, _ in found} == {1, 2}
    texts = " ".join(t for _, t in found)
    assert "{cite}`k`" in texts and "directive: {note}" in texts and "myst_target" in texts and "{eq}`x`" in texts


LAB = (
    FRONT + "# A lab\n\n" + INSTALL + "```{code-cell} ipython3\n:tags: [lab-function]\n\nimport math\n\n\n"
    'def double(x: float) -> float:\n    """Twice ``x``."""\n    y = 2 * x\n    return y\n\n\n'
    'def half(x):\n    """Half of ``x``,\n    over two lines."""\n\n    def inner(v):\n        return v / 2\n\n'
    "    return inner(x)\n\n\nK = 3\n```\n\n"
    "```{code-cell} ipython3\n:tags: [lab-check, remove-input]\n\nlmlab.check.double(double)\n```\n\n"
    "```{code-cell} ipython3\nz = math.pi\n```\n"
)


def test_student_edition_stubs_the_asked_functions(tmp_path: pathlib.Path) -> None:
    from tools.colab import student

    nb = chapter(tmp_path, LAB).notebook()
    assert student.has_lab(nb)
    edition = student.student_notebook(nb, "ch.md")
    _, _, _, functions, check, after = edition.cells
    assert edition.metadata["lmlab"]["asked"] == ["double", "half"]
    assert "`double`, `half`" in edition.cells[0].source and "lmlab.check" in edition.cells[0].source
    src = functions.source
    assert src.startswith("import math\n") and src.rstrip().endswith("K = 3")
    assert 'def double(x: float) -> float:\n    """Twice ``x``."""\n    # Your code here' in src
    assert '    over two lines."""\n    # Your code here' in src
    assert src.count("raise NotImplementedError") == 2 and "y = 2 * x" not in src and "inner" not in src
    namespace: dict = {}
    exec(compile(src, "stub", "exec"), namespace)  # the stubs parse, and raise when called
    with pytest.raises(NotImplementedError):
        namespace["double"](1.0)
    assert check.source == "lmlab.check.double(double)" and "cellView" not in check.metadata  # unfolded
    assert after.source == "z = math.pi"
    # the Colab edition itself keeps the chapter's definitions
    assert "y = 2 * x" in nb.cells[3].source


def test_student_edition_refuses_what_it_cannot_stub(tmp_path: pathlib.Path) -> None:
    from tools.colab import student

    with pytest.raises(cv.ConversionError, match="no docstring"):
        student.stub_source("def f(x):\n    return x\n")
    with pytest.raises(cv.ConversionError, match="defines no function"):
        student.stub_source("x = 1\n")
    nb = chapter(tmp_path, LAB.replace("lab-check, ", "")).notebook()
    with pytest.raises(cv.ConversionError, match="lab-check"):
        student.student_notebook(nb, "ch.md")
    plain = chapter(tmp_path, LAB.replace("[lab-function]", "[hide-input]")).notebook()
    assert not student.has_lab(plain)
    with pytest.raises(cv.ConversionError, match="no cell is tagged"):
        student.student_notebook(plain, "ch.md")


# ---------------------------------------------------------------------------------------------------------------
# The real notebooks (make test-colab)


def colab_notebooks() -> list[pathlib.Path]:
    return [COLAB / p.relative_to(ROOT).with_suffix(".ipynb") for p in cv.chapters()]


@pytest.mark.colab
@pytest.mark.parametrize("path", colab_notebooks(), ids=lambda p: p.stem)
def test_no_myst_left_in_colab_markdown(path: pathlib.Path) -> None:
    assert path.exists(), f"{path} is missing: run `make colab` after a build"
    found = leftovers(nbformat.read(path, as_version=4))
    assert not found, f"{path.name}: MyST left in Markdown:\n" + "\n".join(f"cell {i}: {t}" for i, t in found)


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A git repository holding this checkout's package as it stands (committed or not), for the install cell."""
    repo = tmp_path_factory.mktemp("repo")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "code", repo / "code", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    git = ["git", "-c", "user.name=lmlab", "-c", "user.email=lmlab@localhost", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "snapshot"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return repo


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A kernel spec for .venv-colab's Python that imports google.colab at start-up, as Colab's kernel does."""
    python = VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{VENV} is missing: `make test-colab` creates it")
    spec = tmp_path_factory.mktemp("kernels") / "lmlab-colab"
    spec.mkdir()
    argv = [
        str(python),
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--IPKernelApp.exec_lines=import google.colab",
    ]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Colab", "language": "python"}))
    return spec.parent


def colab_env(snapshot: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPLBACKEND", "LMLAB_QUIET")}
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    env.update(
        PYTHONPATH=os.pathsep.join([str(NETGUARD), str(STUB)]),
        LMLAB_BLOCK_NETWORK="1",
        OMP_NUM_THREADS="1",
        PIP_NO_INDEX="1",  # pip may not reach an index: lmlab's dependencies are already installed
        PIP_NO_BUILD_ISOLATION="0",  # (sic) pip's spelling of --no-build-isolation: setuptools is in the venv
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0=f"url.{snapshot.as_uri()}.insteadOf",
        GIT_CONFIG_VALUE_0=url,
    )
    return env


def run_as_on_colab(
    path: pathlib.Path, snapshot: pathlib.Path, kernel_dir: pathlib.Path, cwd: pathlib.Path, *, student: bool = False
) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` top to bottom in .venv-colab, as Colab would; return it with its outputs.

    Every cell must run, except that in a student edition every ``lab-check`` cell must stop with lmlab's
    ``CheckFailed`` saying that the function is not written yet (a clear verdict, and the kernel lives on).
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from tools.colab.student import LAB_CHECK

    assert path.exists(), f"{path} is missing: run `make colab` after a build"
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="lmlab-colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = NotebookClient(nb, km=km, timeout=1200, allow_errors=False)
    lock = open(VENV / ".install.lock", "w")  # noqa: SIM115 - held across the install cell only
    first = True
    with client.setup_kernel(env=colab_env(snapshot), cwd=str(cwd)):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            expect_verdict = student and LAB_CHECK in cell.metadata.get("tags", [])
            if first:  # two notebooks at once must not install into the same environment together
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as e:
                if expect_verdict and e.ename == "CheckFailed" and "is not written yet" in e.evalue:
                    continue
                pytest.fail(f"{path.name}, cell {index}:\n{cell.source[:300]}\n---\n{str(e)[-3000:]}")
            finally:
                if first:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    first = False
                    errors = [o.get("text", "") for o in cell.outputs if o.get("name") == "stderr"]
                    assert not any("ERROR" in t for t in errors), f"{path.name}: the install cell failed: {errors}"
            if expect_verdict:
                pytest.fail(f"{path.name}, cell {index}: the check of a stub passed:\n{cell.source[:300]}")
    lock.close()
    return nb


@pytest.mark.colab
@pytest.mark.parametrize("path", colab_notebooks(), ids=lambda p: p.stem)
def test_colab_notebook_runs(
    path: pathlib.Path, snapshot: pathlib.Path, kernel_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    from tools.colab.student import LAB_CHECK

    nb = run_as_on_colab(path, snapshot, kernel_dir, tmp_path)
    # With the chapter's own functions every check of a lab passes, and says so.
    for cell in nb.cells:
        if cell.cell_type == "code" and LAB_CHECK in cell.metadata.get("tags", []):
            printed = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
            assert "✓" in printed, f"{path.name}: a check cell printed no verdict:\n{cell.source[:200]}"
    # The install cell, not `pip install .`, put lmlab into the environment: pip recorded the git URL.
    out = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.distribution('lmlab').read_text('direct_url.json'))",
        ],
        env=colab_env(snapshot),
        capture_output=True,
        text=True,
        check=True,
    )
    direct = json.loads(out.stdout)
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    assert direct.get("vcs_info", {}).get("vcs") == "git" and direct["url"] == url, direct


def student_editions() -> list[pathlib.Path]:
    """The lab chapters' student editions (the chapters with a ``lab-function`` cell)."""
    from myst_nb.core.read import read_myst_markdown_notebook

    from tools.colab.student import has_lab

    labs = [p for p in cv.chapters() if has_lab(read_myst_markdown_notebook(p.read_text(encoding="utf8")))]
    return [COLAB / p.parent.relative_to(ROOT) / "student" / f"{p.stem}.ipynb" for p in labs]


@pytest.mark.colab
@pytest.mark.parametrize("path", student_editions(), ids=lambda p: p.stem)
def test_student_edition_runs_and_every_check_asks_for_the_function(
    path: pathlib.Path, snapshot: pathlib.Path, kernel_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    run_as_on_colab(path, snapshot, kernel_dir, tmp_path, student=True)
