"""The drivers' installable web app (issue 20): ``/driver`` serves its shell, its service
worker and its web manifest; everything else it needs is a static file under
``api/static/driver/`` and the vehicle's own API (``/v1/vehicles/{vehicle_id}/...``), called
with the vehicle's device key from the phone.

Why a page of our own rather than a store app: a dispatcher hands a driver a link (or its QR
code) and the phone is ready, on any make, with no account anywhere else. The device key it
signs in with is the one trackers use already (role ``device``, bound to one vehicle), so
the app can act for that vehicle only; it is kept in the phone's IndexedDB, never in a
cookie, and goes only in ``Authorization`` headers.

The service worker is served from ``/driver/sw.js`` (a path under the page, not ``/static``)
so that it may control ``/driver``: a worker controls at most the folder it is served from,
widened here to ``/driver`` itself by ``Service-Worker-Allowed``. It caches the shell so the
app opens without signal; its first line names the shell's files and a hash of their
contents, so any change to any of them makes the browser install the new shell.

The pages carry the dashboard's kind of CSP (our own scripts and styles only, no inline
script, connections to this origin only, and to the broker's WebSocket listener when phones
publish their fixes over MQTT: api/driver_mqtt.py): the map draws our own roads from the
route's geometry with the vendored Leaflet, never a tile server.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.driver_mqtt import connect_source
from api.routes.tracking import _pages, browser_language
from notify.render import SHIPPED_LANGUAGES

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
DRIVER_STATIC = STATIC / "driver"
#: The app's texts, one JSON catalogue per shipped language (the same six as customers').
I18N = DRIVER_STATIC / "i18n"
#: What the app may control: ``/driver`` and everything under it.
SCOPE = "/driver"
#: The languages' own names, for the selector (each in its own language).
LANGUAGE_NAMES = {
    "en": "English",
    "it": "Italiano",
    "es": "Español",
    "fr": "Français",
    "nl": "Nederlands",
    "ru": "Русский",
}
#: As the dashboard's, plus photos and signatures previewed from ``data:``/``blob:`` URLs,
#: the manifest and the service worker. No tile server: the map draws the route's roads.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # The app asks for the phone's position and nothing else; no embedded page may.
    "Permissions-Policy": "geolocation=(self), camera=(self), microphone=()",
}
#: Files of the shell the service worker keeps for offline use, besides the page itself.
_SHELL_SUFFIXES = (".js", ".css", ".json", ".png", ".webmanifest")
_VENDOR = (
    "/static/vendor/leaflet/leaflet.js",
    "/static/vendor/leaflet/leaflet.css",
    "/static/vendor/mqtt/mqtt.min.js",
)


def catalogue(language: str) -> dict[str, str]:
    """The app's texts in a shipped language (English for any other)."""
    name = language if language in SHIPPED_LANGUAGES else "en"
    texts: dict[str, str] = json.loads((I18N / f"{name}.json").read_text(encoding="utf-8"))
    return texts


def _static_url(path: Path) -> str:
    return "/static/" + path.relative_to(STATIC).as_posix()


@cache
def shell() -> tuple[str, tuple[str, ...]]:
    """The shell's version (a hash of every file it is made of) and the URLs the service
    worker caches. Computed once per process: the files change only with a deployment."""
    files = sorted(
        p
        for p in DRIVER_STATIC.rglob("*")
        if p.is_file() and p.suffix in _SHELL_SUFFIXES and p.name != "sw.js"
    )
    digest = hashlib.sha256()
    template = Path(__file__).resolve().parent.parent / "templates" / "driver.html"
    for path in [*files, DRIVER_STATIC / "sw.js", template]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for url in _VENDOR:
        digest.update((STATIC / url.removeprefix("/static/")).read_bytes())
    # The manifest is served under the scope (its own URL), not from /static.
    urls = [
        SCOPE,
        f"{SCOPE}/manifest.webmanifest",
        *(_static_url(p) for p in files if p.suffix != ".webmanifest"),
        *_VENDOR,
    ]
    return digest.hexdigest()[:16], tuple(urls)


@router.get("/driver", response_class=HTMLResponse)
def driver_app(request: Request) -> Response:
    """The app's shell, worded in the browser's language until the app picks its own (the
    vehicle's language from the API, the phone's, or the driver's choice)."""
    language = browser_language(request.headers.get("accept-language", ""))
    texts = catalogue(language)
    config: dict[str, Any] = {
        "lang": language,
        "texts": texts,
        "languages": LANGUAGE_NAMES,
        "sw": f"{SCOPE}/sw.js",
        "scope": SCOPE,
    }
    html = _pages.get_template("driver.html").render(lang=language, t=texts, config=config)
    # no-cache, not no-store: the service worker keeps a copy for offline starts.
    headers = {**_SECURITY_HEADERS, "Cache-Control": "no-cache", "Vary": "Accept-Language"}
    broker = connect_source(request)
    if broker is not None:  # the phone publishes its fixes there (api/driver_mqtt.py)
        headers["Content-Security-Policy"] = CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {broker}"
        )
    return HTMLResponse(html, headers=headers)


@router.get("/driver/sw.js")
def service_worker() -> Response:
    """The service worker, behind a first line naming the shell's version and files."""
    version, urls = shell()
    build = json.dumps({"version": version, "shell": list(urls), "scope": SCOPE})
    body = f"self.BUILD = {build};\n" + (DRIVER_STATIC / "sw.js").read_text(encoding="utf-8")
    return Response(
        body,
        media_type="text/javascript",
        headers={
            **_SECURITY_HEADERS,
            # The browser checks for a new worker on every start; never an old copy.
            "Cache-Control": "no-cache",
            "Service-Worker-Allowed": SCOPE,
        },
    )


@router.get("/driver/manifest.webmanifest")
def manifest() -> Response:
    """The web manifest: what "Add to Home Screen" installs."""
    body = (DRIVER_STATIC / "manifest.webmanifest").read_bytes()
    return Response(
        body,
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
