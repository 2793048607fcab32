"""schemathesis against the service's whole OpenAPI, with a larger budget than CI's.

    python -m bench.api_fuzz [--examples N] [--seed S] [--database-url URL]
                             [--base-url URL --key KEY]

Without ``--base-url`` it starts the service (uvicorn, in a thread) on a fresh store (SQLite,
or the empty database at ``--database-url``) seeded with a depot, a vehicle with an OsmAnd
device, three orders and a dispatched plan, so half of the generated requests can name things
that exist (their path ids are swapped for real ones) and reach the code behind the 404s.
Every operation gets N examples, split between schemathesis's positive (valid) and negative
(invalid) generation. Failures: any 5xx, any response that breaks its documented schema.
Undocumented status codes and content types are counted too, as advice. Last line: one JSON
object ``{"operations", "examples", "failures", ...}``; exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok

from api.app import create_app
from api.settings import Settings
from store.db import make_engine, session_factory, upgrade
from store.repo import create_organisation

#: A failure is one of these...
FAILING: dict[str, Any] = {
    "server_error": not_a_server_error,
    "schema_violation": response_schema_conformance,
}
#: ...these are counted as advice (documentation gaps, not broken behaviour).
ADVISORY: dict[str, Any] = {
    "undocumented_status": status_code_conformance,
    "undocumented_content_type": content_type_conformance,
}
SHIFT = {"start": "2026-06-10T06:00:00+00:00", "end": "2026-06-10T18:00:00+00:00"}


@dataclass
class Tally:
    operations: int = 0
    examples: int = 0
    with_real_ids: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    #: (kind, "METHOD /path") -> first message, for the report.
    first: dict[tuple[str, str], str] = field(default_factory=dict)
    transport_errors: int = 0

    @property
    def failures(self) -> int:
        return sum(self.found[k] for k in (*FAILING, "invalid_operation"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(data: Path, database_url: str | None = None) -> Iterator[tuple[str, str]]:
    """The service on a free port over a fresh store (SQLite unless ``database_url``, which
    must be an empty database): (base URL, admin key)."""
    url = database_url or f"sqlite:///{data / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    _, key = create_organisation(session_factory(engine), "Fuzz", "UTC")
    engine.dispose()
    port = _free_port()
    settings_ = Settings(
        data_dir=data, database_url=url, plan_time_limit_s=0.3, mqtt=False, sender_enabled=False
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings_), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def seed_data(base: str, key: str) -> dict[str, str]:
    """Things that exist, by path parameter name: a vehicle with a device and a position, an
    order, a dispatched plan, a key."""
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=h, timeout=60) as client:

        def post(path: str, body: dict[str, Any], expect: int = 201) -> Any:
            r = client.post(path, json=body)
            if r.status_code != expect:
                raise RuntimeError(f"seeding {path}: {r.status_code} {r.text[:300]}")
            return r.json()

        post("/v1/depots", {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}})
        post("/v1/vehicles", {"id": "v1", "depot_id": "d1", "shift": SHIFT})
        for k, (lat, lon) in enumerate([(60.1665, 24.9433), (60.17, 24.95), (60.172, 24.94)]):
            post("/v1/orders", {"id": f"o{k + 1}", "location": {"lat": lat, "lon": lon}})
        device = post("/v1/vehicles/v1/devices", {"protocol": "osmand"})["external_device_id"]
        plan_id = post("/v1/plans", {"time_limit_s": 0.3}, 202)["plan_id"]
        deadline = time.monotonic() + 120
        while client.get(f"/v1/plans/{plan_id}").json()["status"] not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError("the seed plan did not finish")
            time.sleep(0.2)
        client.post(f"/v1/plans/{plan_id}/dispatch")
        client.get("/osmand", params={"id": device, "lat": 60.17, "lon": 24.94})
        key_id = post("/v1/keys", {"role": "support"}).get("id", "")
    known = {"vehicle_id": "v1", "order_id": "o1", "plan_id": plan_id, "depot_id": "d1"}
    if key_id:
        known["key_id"] = key_id
    return known


def _where(case: Any) -> str:
    return f"{case.method} {case.operation.path}"


def _check(tally: Tally, case: Any, response: Any) -> None:
    for kind, check in (*FAILING.items(), *ADVISORY.items()):
        try:
            case.validate_response(response, checks=[check])
        except (FailureGroup, Failure) as exc:
            tally.found[kind] += 1
            where = (kind, _where(case))
            if where not in tally.first:
                text = str(exc).strip().replace("\n", " | ")[:400]
                tally.first[where] = f"{response.status_code}: {text}"
                if kind in FAILING:
                    print(f"FAIL {kind} {_where(case)}: {text}", file=sys.stderr, flush=True)


def fuzz_operation(
    operation: Any,
    base: str,
    key: str,
    known: dict[str, str],
    examples: int,
    tally: Tally,
    random_seed: int | None,
) -> None:
    """``examples`` requests to one operation, half positive, half negative."""
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    for k, mode in enumerate(modes):
        budget = examples // len(modes) + (1 if k < examples % len(modes) else 0)
        if budget > 0:
            seed_k = None if random_seed is None else random_seed + k
            _fuzz_mode(operation, mode, budget, base, key, known, tally, seed_k)


def _fuzz_mode(
    operation: Any,
    mode: schemathesis.GenerationMode,
    budget: int,
    base: str,
    key: str,
    known: dict[str, str],
    tally: Tally,
    random_seed: int | None,
) -> None:
    """``budget`` requests in one generation mode; every other one with its path ids swapped
    for real ones."""
    headers = {"Authorization": f"Bearer {key}"}
    calls = [0]

    @settings(
        max_examples=budget,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        calls[0] += 1
        if calls[0] % 2 == 0 and case.path_parameters:
            real = {n: known[n] for n in case.path_parameters if n in known}
            if real:
                case.path_parameters = {**case.path_parameters, **real}
                tally.with_real_ids += 1
        tally.examples += 1
        try:
            response = case.call(base_url=base, headers=headers, timeout=60)
        except Exception as exc:  # the server hung up or timed out: count it as a 5xx
            tally.transport_errors += 1
            tally.found["server_error"] += 1
            tally.first.setdefault(("server_error", _where(case)), f"transport: {exc!r}")
            return
        tally.statuses[response.status_code] += 1
        _check(tally, case, response)

    run: Callable[[], None] = call if random_seed is None else seed(random_seed)(call)
    # Unsatisfiable: nothing to make invalid (an operation without parameters or body).
    with contextlib.suppress(Unsatisfiable):
        run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="per operation")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--base-url", default=None, help="a running service (else one is started)")
    parser.add_argument("--key", default=None, help="its admin key (with --base-url)")
    parser.add_argument(
        "--database-url", default=None, help="an empty database for the started service"
    )
    args = parser.parse_args(argv)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        if args.base_url:
            if not args.key:
                parser.error("--base-url needs --key")
            context: Any = _given(args.base_url, args.key)
        else:
            context = serve(Path(tmp), args.database_url)
        with context as (base, key):
            known = seed_data(base, key) if not args.base_url else {}
            schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
            for result in schema.get_all_operations():
                if not isinstance(result, Ok):
                    tally.found["invalid_operation"] += 1
                    print(f"invalid operation: {result.err()}", file=sys.stderr)
                    continue
                operation = result.ok()
                tally.operations += 1
                fuzz_operation(operation, base, key, known, args.examples, tally, args.seed)
                print(
                    f"{operation.method.upper()} {operation.path}: {tally.examples} calls so far",
                    file=sys.stderr,
                    flush=True,
                )
    for (kind, where), message in sorted(tally.first.items()):
        print(f"{kind:<26} {where}: {message}", file=sys.stderr)
    print(
        json.dumps(
            {
                "operations": tally.operations,
                "examples": tally.examples,
                "failures": tally.failures,
                "server_errors": tally.found["server_error"],
                "schema_violations": tally.found["schema_violation"],
                "undocumented_status": tally.found["undocumented_status"],
                "undocumented_content_type": tally.found["undocumented_content_type"],
                "transport_errors": tally.transport_errors,
                "with_real_ids": tally.with_real_ids,
                "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
                "seconds": round(time.monotonic() - started, 1),
            }
        ),
        flush=True,
    )
    return 1 if tally.failures else 0


@contextmanager
def _given(base: str, key: str) -> Iterator[tuple[str, str]]:
    yield base.rstrip("/"), key


if __name__ == "__main__":
    raise SystemExit(main())
