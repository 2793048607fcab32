"""The repository's layout: modules small enough to read whole, and api/ holding only the HTTP
application (the command line, demo, report and job queue live in lastmile/ and jobs/)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A module this long or longer holds more than one concern: split it.
MAX_LINES = 500
#: Not ours to keep small: the virtualenv, git's own files, generated Alembic migrations and
#: build output.
SKIPPED = {Path(".venv"), Path(".git"), Path("store/migrations/versions"), Path("build")}
#: Module names that belong outside the HTTP application.
NOT_HTTP = {"cli", "demo", "report", "jobs", "task_queue"}


def python_files() -> list[Path]:
    """Every .py file in the repository outside SKIPPED, relative to its root."""
    found: list[Path] = []
    for folder, subfolders, files in os.walk(REPO):
        here = Path(folder).relative_to(REPO)
        subfolders[:] = sorted(d for d in subfolders if here / d not in SKIPPED)
        found += [here / name for name in sorted(files) if name.endswith(".py")]
    return found


def test_every_module_is_under_500_lines() -> None:
    """Every non-generated Python module in the repository has fewer than 500 lines."""
    files = python_files()
    assert Path("tests/test_layout.py") in files
    lines = {path: len((REPO / path).read_text(encoding="utf-8").splitlines()) for path in files}
    too_long = sorted(f"{path}: {n} lines" for path, n in lines.items() if n >= MAX_LINES)
    for line in too_long:
        print(f"too long (split it): {line}")
    assert not too_long, f"modules of {MAX_LINES}+ lines: {', '.join(too_long)}"


def test_api_holds_only_the_http_application() -> None:
    """No module or package under api/ is named cli, demo, report, jobs or task_queue."""
    api = REPO / "api"
    names = {
        path.relative_to(REPO): path.stem if path.is_file() else path.name
        for path in api.rglob("*")
        if "__pycache__" not in path.parts and (path.is_dir() or path.suffix == ".py")
    }
    assert Path("api/app.py") in names
    misplaced = sorted(str(path) for path, name in names.items() if name in NOT_HTTP)
    assert not misplaced, f"not HTTP, so not under api/: {', '.join(misplaced)}"
