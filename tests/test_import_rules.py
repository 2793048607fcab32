"""The import rules of pyproject.toml ([tool.importlinter]) hold: the pure core reaches no
adapter, store or transport, and one module each imports OR-Tools and the OSM readers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(found).exists():
        pytest.fail("lint-imports is not installed (pip install -e '.[dev]')")
    return found


def test_import_contracts_are_kept() -> None:
    """Every contract in pyproject.toml is kept by the code as it is."""
    done = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_core_module_importing_telematics_breaks_a_contract(tmp_path: Path) -> None:
    """The contracts can fail: a copy of the tree where eta imports telematics is refused."""
    for room in ("domain", "routing", "eta", "evaluation", "telematics", "notify", "store",
                 "jobs", "api", "lastmile", "bench"):  # fmt: skip
        shutil.copytree(REPO / room, tmp_path / room, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "eta" / "params.py").open("a") as f:
        f.write("\nfrom telematics.progress import apply_fix  # noqa: E402,F401\n")
    done = subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
    )
    assert done.returncode != 0
    assert "eta.params -> telematics.progress" in done.stdout
