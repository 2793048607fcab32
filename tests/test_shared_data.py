"""Tests that need the shared data folder skip where it is absent, but fail in CI."""

from __future__ import annotations

import pytest

from tests.conftest import shared_osm


def test_missing_extract_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """In CI (LASTMILE_REQUIRE_SERVERS=1) a missing OSM extract is a failure, not a skip."""
    monkeypatch.setenv("LASTMILE_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception, match="LASTMILE_SHARED_DIR"):
        shared_osm("no-such-city.osm.pbf")


def test_missing_extract_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a developer's machine without the shared folder the test skips, saying where."""
    monkeypatch.delenv("LASTMILE_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-city"):
        shared_osm("no-such-city.osm.pbf")
