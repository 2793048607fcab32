"""A long fuzz of every decoder in :mod:`telematics.decoders`: nothing but DecodeError.

    python -m bench.fuzz_decoders [--seconds S] [--engine atheris|hypothesis] [--crashes DIR]

``atheris`` (the ``fuzz`` extra; libFuzzer, coverage-guided) mutates bytes: the first byte
picks the decoder, the rest is its payload, seeded with the golden payloads and a dictionary
of field names and odd literals (NaN, Infinity, 1e400, lone surrogates). ``hypothesis`` (the
default when atheris is missing) draws structured junk from the strategies in
:mod:`bench.decoder_fuzz_strategies`, the same ones ``tests/telematics/test_fuzz_decoders.py``
runs briefly in CI; what passes is decided in :mod:`bench.decoder_fuzz_targets`. Any other
exception is a crash: counted, its input kept under ``--crashes``, and the run goes on. Last
line: one JSON object ``{"decoders", "examples", "crashes", "seconds", ...}``; exit 1 if
anything crashed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings

from bench.decoder_fuzz_strategies import STRATEGIES
from bench.decoder_fuzz_targets import TARGETS, run_case
from telematics import decoders

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "telematics" / "golden"


# The run ------------------------------------------------------------------------------------
@dataclass
class Tally:
    examples: int = 0
    accepted: int = 0
    crashes: int = 0
    kinds: dict[str, str] | None = None

    def crash(self, crashes_dir: Path, name: str, case: Any, exc: BaseException) -> None:
        """Count it and keep the first input of each kind (exception type and place)."""
        self.crashes += 1
        where = traceback.extract_tb(exc.__traceback__)[-1]
        kind = f"{name}:{type(exc).__name__}:{Path(where.filename).name}:{where.lineno}"
        self.kinds = self.kinds or {}
        if kind in self.kinds:
            return
        crashes_dir.mkdir(parents=True, exist_ok=True)
        path = crashes_dir / f"crash-{len(self.kinds)}.txt"
        path.write_text(f"{kind}\n{exc!r}\n{case!r}\n", encoding="utf-8", errors="replace")
        self.kinds[kind] = str(path)
        print(f"CRASH {kind}: {exc!r} (input in {path})", file=sys.stderr, flush=True)


def _fuzz_round(name: str, tally: Tally, crashes_dir: Path) -> None:
    """1,000 fresh random examples for one decoder."""

    @settings(
        max_examples=1000,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(STRATEGIES[name])
    def fuzz(case: Any) -> None:
        tally.examples += 1
        try:
            tally.accepted += run_case(name, case)
        except Exception as exc:
            tally.crash(crashes_dir, name, case, exc)

    fuzz()


def _hypothesis(seconds: float, tally: Tally, crashes_dir: Path) -> None:
    """Round-robin over the decoders until the time is up; a crash is recorded and the
    rounds go on."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in sorted(STRATEGIES):
            _fuzz_round(name, tally, crashes_dir)
            if time.monotonic() >= deadline:
                break


def _seeds(corpus: Path) -> None:
    """The golden payloads, one per decoder, as starting inputs (byte 0 picks the decoder)."""
    corpus.mkdir(parents=True, exist_ok=True)
    names = sorted(TARGETS)
    for path in sorted(GOLDEN.glob("*.json")):
        sample = json.loads(path.read_text())
        kind = {"fleet": "fleet_json", "gpsd": "gpsd_tpv", "osmand": "osmand_query"}.get(
            sample["decoder"], sample["decoder"]
        )
        body = sample.get("payload", sample.get("query", "")).encode()
        (corpus / path.stem).write_bytes(bytes([names.index(kind)]) + body)
    (corpus / "time").write_bytes(bytes([names.index("parse_time")]) + b'"2026-06-10T10:00Z"')


def _dictionary(path: Path) -> None:
    """libFuzzer tokens: field names and the literals that make parsers stumble."""
    tokens = {
        *(f'"{k}"' for k in ("lat", "lon", "time", "tst", "_type", "location", "class", "TPV")),
        *(f'"{k}"' for k in ("coords", "latitude", "longitude", "device_id", "timestamp")),
        *("NaN", "Infinity", "-Infinity", "1e400", "1e308", "-0", "true", "null", "[]", "{}"),
        *(r'"\ud800"', r'"\u0000"', '"9999-12-31T23:59:59-01:00"', '"0001-01-01T00:00:00+01:00"'),
        *("lat=", "lon=", "id=dev-1", "timestamp=", "&"),
    }
    lines = [json.dumps(t) for t in sorted(tokens)]
    path.write_text("\n".join(lines) + "\n")


def _atheris(seconds: float, tally: Tally, crashes_dir: Path, work: Path) -> None:
    """libFuzzer over the decoders, instrumented for coverage; stops itself when the time is
    up (libFuzzer would exit the process without returning)."""
    atheris: Any = importlib.import_module("atheris")
    for name in dir(decoders):
        function = getattr(decoders, name)
        ours = getattr(function, "__module__", "") == decoders.__name__
        if ours and hasattr(function, "__code__"):
            atheris.instrument_func(function)
    names = sorted(TARGETS)
    corpus, dictionary = work / "corpus", work / "tokens.dict"
    _seeds(corpus)
    _dictionary(dictionary)
    started = time.monotonic()
    deadline = started + seconds

    def one(data: bytes) -> None:
        if tally.examples % 256 == 0 and time.monotonic() >= deadline:
            _report("atheris", tally, time.monotonic() - started)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1 if tally.crashes else 0)
        tally.examples += 1
        if not data:
            return
        name = names[data[0] % len(names)]
        case: Any = data[1:]
        if name == "parse_time":
            try:
                case = json.loads(case)
            except (ValueError, RecursionError):
                case = case.decode("utf-8", "replace")
        try:
            tally.accepted += run_case(name, case)
        except Exception as exc:
            tally.crash(crashes_dir, name, case, exc)

    argv = [sys.argv[0], f"-dict={dictionary}", "-max_len=4096", "-print_final_stats=1"]
    atheris.Setup([*argv, str(corpus)], one)
    atheris.Fuzz()


def _report(engine: str, tally: Tally, elapsed: float) -> None:
    print(
        json.dumps(
            {
                "decoders": len(TARGETS),
                "examples": tally.examples,
                "crashes": tally.crashes,
                "seconds": round(elapsed, 1),
                "engine": engine,
                "accepted": tally.accepted,
                "crash_kinds": sorted(tally.kinds or {}),
            }
        ),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--engine", choices=["atheris", "hypothesis", "auto"], default="auto")
    parser.add_argument("--crashes", type=Path, default=Path("var/fuzz/crashes"))
    parser.add_argument("--work", type=Path, default=Path("var/fuzz"), help="atheris corpus")
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        try:
            importlib.import_module("atheris")
            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    tally = Tally()
    started = time.monotonic()
    if engine == "atheris":
        _atheris(args.seconds, tally, args.crashes, args.work)  # exits by itself
    _hypothesis(args.seconds, tally, args.crashes)
    _report(engine, tally, time.monotonic() - started)
    return 1 if tally.crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
