"""The notebooks run top to bottom on today's code (so they never rot), and are committed with
their outputs stripped."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, shared_osm

NOTEBOOKS = REPO / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
#: Real extracts a notebook reads from ../shared/data/osm/ (skipped where that is absent).
NEEDS_OSM = {"eta_accuracy.ipynb": "monaco.osm.pbf"}
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``python3`` kernel that runs this very interpreter (the venv's), found before any
    user-wide kernelspec of the same name that might point at another Python."""
    spec = tmp_path_factory.mktemp("jupyter") / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(spec.parent.parent))
        yield "python3"


def execute(nb: nbformat.NotebookNode, kernel_name: str) -> nbformat.NotebookNode:
    """Run every cell in the notebooks folder, as Jupyter would; raises on a failing cell."""
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    executed: nbformat.NotebookNode = client.execute()
    return executed


def test_the_promised_notebooks_exist() -> None:
    assert {p.name for p in ALL} >= {"planning_walkthrough.ipynb", "eta_accuracy.ipynb"}


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    """Outputs stay out of git: they bloat diffs and go stale."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {k} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {k} has an execution count"


@pytest.mark.slow
def test_kernel_is_this_python(kernel: str) -> None:
    """The notebooks see the packages under test, not another environment's copy."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")]
    )
    out = execute(nb, kernel).cells[0].outputs
    assert [o.get("text", "").strip() for o in out] == [sys.executable]


@pytest.mark.slow
@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebook_runs(path: Path, kernel: str) -> None:
    """Every cell runs without error or warning, and each plot cell draws a figure."""
    if path.name in NEEDS_OSM:
        shared_osm(NEEDS_OSM[path.name])
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    execute(nb, kernel)
    elapsed_s = time.perf_counter() - started
    stderr = [
        o.text
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type == "stream" and o.name == "stderr"
    ]
    assert stderr == [], f"{path.name} wrote to stderr (a warning?): {stderr}"
    images = sum(
        "image/png" in o.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    assert images >= 1, f"{path.name} drew no figure"
    print(f"{path.name}: {elapsed_s:.1f} s")
