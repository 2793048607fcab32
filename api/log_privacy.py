"""Keep customer data out of the HTTP access log.

uvicorn logs every request's path with its query string. Support's lookup carries a
customer's phone number or e-mail address there, OsmAnd devices a position, and a tracking
page's path is the tracking token, which opens the customer's order. The access log keeps
the route and drops those: queries become ``?…`` and tokens ``/t/…``.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_TOKEN_PATH = re.compile(r"^/t/[^/?]+")


def redact_path(path: str) -> str:
    """The path without its query string and without a tracking token."""
    base, query_mark, _ = path.partition("?")
    return _TOKEN_PATH.sub("/t/…", base) + ("?…" if query_mark else "")


class AccessLogPrivacy(logging.Filter):
    """Redacts the path in uvicorn's access records (args: client, method, path, HTTP
    version, status); other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_path(args[2]), args[3], args[4])
        return True


def install_access_log_privacy() -> None:
    """Add the filter to uvicorn's access logger once. uvicorn's logging setup at start keeps
    filters already on a logger, so installing it before then is enough."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessLogPrivacy) for f in access.filters):
        access.addFilter(AccessLogPrivacy())
