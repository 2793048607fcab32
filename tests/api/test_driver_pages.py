"""The drivers' web app's files as the service serves them (issue 20): the shell and its
headers (CSP with no inline script, installability), the service worker (its scope, never
cached, naming every file the shell needs), the web manifest and its icons, and the app's
texts, the same in all six languages. The app's behaviour is proven in a browser:
tests/api/test_browser_driver*.py."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from api.routes.driver_pages import DRIVER_STATIC, I18N, shell
from notify.render import SHIPPED_LANGUAGES
from tests.api.service import Service, running

TEMPLATE = Path(__file__).resolve().parents[2] / "api" / "templates" / "driver.html"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the module: these tests only read files it serves."""
    data = tmp_path_factory.mktemp("driver-pages")
    with running(f"sqlite:///{data / 'lastmile.db'}", data, sender_enabled=False) as s:
        yield s


class _Page(HTMLParser):
    """The shell's scripts, links and metas."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.metas: dict[str, str | None] = {}
        self.inline_handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.inline_handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(found)
        elif tag == "link":
            self.links.append(found)
        elif tag == "meta" and found.get("name"):
            self.metas[str(found["name"])] = found.get("content")


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_the_shell_is_installable_and_runs_only_our_own_scripts(app: Service) -> None:
    r = app.client.get("/driver")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    for rule in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert rule in csp
    assert "unsafe" not in csp
    # The service worker keeps a copy for offline starts; the browser always asks first.
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-content-type-options"] == "nosniff"
    page = _parse(r.text)
    # No inline script: every script is a file of ours, or data (never run).
    for script in page.scripts:
        assert script.get("src") or script.get("type") == "application/json", script
    assert page.inline_handlers == []
    sources = [str(s["src"]) for s in page.scripts if s.get("src")]
    assert sources[-1] == "/static/driver/app.js"
    # Every script of the app is loaded (the service worker is registered, not loaded).
    scripts = {f"/static/driver/{p.name}" for p in DRIVER_STATIC.glob("*.js") if p.name != "sw.js"}
    assert scripts <= set(sources)
    assert "/static/vendor/leaflet/leaflet.js" in sources
    for link in page.links:
        href = str(link["href"])
        assert href.startswith("/"), href  # nothing from another origin (no tile server, no CDN)
        assert app.client.get(href).status_code == 200, href
    for src in sources:
        assert app.client.get(src).status_code == 200, src
    assert {"manifest"} <= {str(link["rel"]) for link in page.links}
    assert page.metas["theme-color"]
    assert "width=device-width" in str(page.metas["viewport"])


def test_the_shell_speaks_the_browsers_language(app: Service) -> None:
    r = app.client.get("/driver", headers={"Accept-Language": "fi-FI, ru;q=0.8, en;q=0.5"})
    assert '<html lang="ru">' in r.text
    assert "<title>Водитель</title>" in r.text
    assert r.headers["vary"] == "Accept-Language"
    config = json.loads(
        re.search(r'id="driver-config">(.*?)</script>', r.text, re.S).group(1)  # type: ignore[union-attr]
    )
    assert config["lang"] == "ru"
    assert config["texts"]["stops_heading"] == "Остановки на сегодня"
    assert sorted(config["languages"]) == sorted(SHIPPED_LANGUAGES)
    assert config["scope"] == "/driver"


def test_the_service_worker_may_control_the_app_and_is_never_stale(app: Service) -> None:
    r = app.client.get("/driver/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"
    # Served under /driver/, it may control /driver itself only if allowed to.
    assert r.headers["service-worker-allowed"] == "/driver"
    first, _, rest = r.text.partition("\n")
    assert first.startswith("self.BUILD = ")
    assert first.endswith(";")
    build = json.loads(first.removeprefix("self.BUILD = ").removesuffix(";"))
    version, urls = shell()
    assert build == {"version": version, "shell": list(urls), "scope": "/driver"}
    assert "importScripts(" in rest
    # Everything the shell needs offline is in the list and is served.
    needed = {"/driver", "/driver/manifest.webmanifest", "/static/vendor/leaflet/leaflet.js"}
    needed |= {f"/static/driver/{p.name}" for p in DRIVER_STATIC.glob("*.js") if p.name != "sw.js"}
    needed |= {f"/static/driver/i18n/{lang}.json" for lang in SHIPPED_LANGUAGES}
    assert needed <= set(urls)
    for url in urls:
        assert app.client.get(url).status_code == 200, url


def test_the_manifest_installs_the_app_with_its_icons(app: Service) -> None:
    r = app.client.get("/driver/manifest.webmanifest")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/manifest+json")
    manifest: dict[str, Any] = r.json()
    assert manifest["start_url"] == "/driver"
    assert manifest["scope"] == "/driver"
    assert manifest["display"] == "standalone"
    assert manifest["name"]
    assert manifest["short_name"]
    sizes = set()
    for icon in manifest["icons"]:
        got = app.client.get(icon["src"])
        assert got.status_code == 200
        image = Image.open(io.BytesIO(got.content))
        assert image.format == "PNG"
        assert f"{image.width}x{image.height}" == icon["sizes"]
        sizes.add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes
    assert any(icon.get("purpose") == "maskable" for icon in manifest["icons"])


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_the_texts_are_complete_in_all_six_languages() -> None:
    english: dict[str, str] = json.loads((I18N / "en.json").read_text(encoding="utf-8"))
    for language in SHIPPED_LANGUAGES:
        texts: dict[str, str] = json.loads((I18N / f"{language}.json").read_text(encoding="utf-8"))
        assert texts.keys() == english.keys(), language
        for key, text in texts.items():
            assert text.strip(), (language, key)
            assert _placeholders(text) == _placeholders(english[key]), (language, key)


def test_every_text_the_app_asks_for_exists() -> None:
    """The keys the scripts and the shell name, directly or by prefix (status_, reason_...)."""
    english = json.loads((I18N / "en.json").read_text(encoding="utf-8"))
    script = "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted(DRIVER_STATIC.glob("*.js"))
        if path.name != "sw.js"
    )
    template = TEMPLATE.read_text(encoding="utf-8")
    named = set(re.findall(r'\b(?:t|announce|formProblem)\("([a-z_]+)"', script))
    named |= set(re.findall(r'data-i18n(?:-label)?="([a-z_]+)"', template))
    named |= set(re.findall(r"\bt\.([a-z_]+)", template))
    prefixes = {key for key in named if key.endswith("_")}
    assert named - prefixes - english.keys() == set()
    assert prefixes == {"status_", "reason_", "location_", "connection_"}
    for prefix, values in {
        "status_": ("pending", "arrived", "delivered", "failed", "skipped"),
        "reason_": ("not_home", "refused", "address_not_found", "access"),
        "location_": ("denied", "unavailable", "timeout", "unsupported"),
        "connection_": ("live", "polling", "offline", "lost"),
    }.items():
        assert {prefix + v for v in values} <= english.keys()
