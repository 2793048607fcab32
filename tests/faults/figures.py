"""The fault tests' measured figures, printed for RELIABILITY.md."""

from __future__ import annotations


def report(line: str) -> None:
    """A measured figure, printed for RELIABILITY.md (shown by ``-rA`` or ``-s``)."""
    print(f"[faults] {line}")
