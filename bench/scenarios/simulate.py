"""One SUMO run: vans through their planned stops among random background traffic.

Writes the input files, runs ``sumo`` (a subprocess, no TraCI: the run is fully described by
its files and seed) and reads back the vans' FCD, their stop events and the run's statistics.
Times here are SUMO's simulation seconds; the caller maps them to epoch seconds.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.scenarios import traffic
from bench.scenarios.sumo_net import VCLASS, StopSite, sumo_binary, sumo_env, sumo_home

#: A delivery van: longer and slower to accelerate than SUMO's default car.
VAN_TYPE_ATTRS: dict[str, str] = {
    "id": "van",
    "vClass": VCLASS,
    "length": "6.5",
    "width": "2.1",
    "minGap": "2.5",
    "accel": "1.8",
    "decel": "4.0",
    "maxSpeed": "25",
    "guiShape": "delivery",
}

#: SUMO's default: a vehicle stuck this long is teleported (how gridlock shows up).
TIME_TO_TELEPORT_S = 300


@dataclass(frozen=True, slots=True)
class VanStop:
    """A stop as SUMO drives it: where, and the simulated (true) dwell."""

    stop_id: str
    site: StopSite
    duration_s: int


@dataclass(frozen=True, slots=True)
class HoldUp:
    """A halt that is not a delivery (breakdown, accident, police): after stop ``after_index``."""

    after_index: int
    site: StopSite
    duration_s: int


@dataclass(frozen=True, slots=True)
class VanTrip:
    vehicle_id: str
    depart_s: int
    depot: StopSite
    stops: tuple[VanStop, ...]
    holdups: tuple[HoldUp, ...] = ()

    def halt_lanes(self) -> list[str]:
        """Lanes of every halt SUMO drives, deliveries and hold-ups, in order."""
        lanes: list[str] = []
        for k, stop in enumerate(self.stops):
            lanes.append(stop.site.lane_id)
            lanes += [h.site.lane_id for h in self.holdups if h.after_index == k]
        return lanes


@dataclass(frozen=True, slots=True)
class Closure:
    """An edge closed from ``begin_s`` to ``end_s``; vehicles entering ``trigger_edges`` with it
    on their route look for a detour (SUMO ``closingReroute`` without permission changes)."""

    edge_id: str
    begin_s: int
    end_s: int
    trigger_edges: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Slowdown:
    """A variable speed sign: ``lane_ids`` limited to ``speed_mps`` between begin and end."""

    lane_ids: tuple[str, ...]
    begin_s: int
    end_s: int
    speed_mps: float
    normal_speed_mps: float


@dataclass(frozen=True, slots=True)
class Fix:
    """One FCD sample: WGS84 position, speed and SUMO's (grid-relative) angle."""

    time_s: float
    lat: float
    lon: float
    speed_mps: float
    angle_deg: float
    #: SUMO's lane, only when the run was asked for it (``fcd_lanes``).
    lane_id: str = ""


@dataclass(frozen=True, slots=True)
class StopEvent:
    lane_id: str
    end_pos_m: float
    started_s: float
    ended_s: float


@dataclass(frozen=True, slots=True)
class RunStats:
    """What the statistic output and the log say about the run as a whole."""

    inserted: int
    teleports: int
    van_teleport_warnings: tuple[str, ...]
    van_arrival_s: dict[str, float]


@dataclass(frozen=True, slots=True)
class RunOutput:
    fixes: dict[str, list[Fix]]
    stops: dict[str, list[StopEvent]]
    stats: RunStats


def write_van_routes(path: Path, vans: list[VanTrip]) -> None:
    """Each van a ``<trip>`` from its depot back to it; SUMO routes through the stops in order."""
    root = ET.Element("routes")
    van_type = ET.SubElement(root, "vType", VAN_TYPE_ATTRS)
    # The FCD device on the vans' type only: background traffic writes no trajectories.
    ET.SubElement(van_type, "param", {"key": "has.fcd.device", "value": "true"})
    for van in sorted(vans, key=lambda v: v.depart_s):
        trip = ET.SubElement(
            root,
            "trip",
            {
                "id": van.vehicle_id,
                "type": "van",
                "depart": str(van.depart_s),
                "from": van.depot.edge_id,
                "to": van.depot.edge_id,
                "departLane": "best",
                "departPos": f"{van.depot.end_pos_m:.2f}",
                "departSpeed": "0",
                "arrivalPos": f"{van.depot.end_pos_m:.2f}",
            },
        )
        for k, stop in enumerate(van.stops):
            halts = [(stop.site, stop.duration_s)]
            halts += [(h.site, h.duration_s) for h in van.holdups if h.after_index == k]
            for site, duration_s in halts:
                ET.SubElement(
                    trip,
                    "stop",
                    {
                        "lane": site.lane_id,
                        "endPos": f"{site.end_pos_m:.2f}",
                        "duration": str(duration_s),
                        # Pulled over at the kerb, off the lane: traffic passes a halted van.
                        "parking": "true",
                    },
                )
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)


def write_disruptions(path: Path, closures: list[Closure], slowdowns: list[Slowdown]) -> None:
    """An additional file with the road closures (rerouters) and slowdowns (speed signs)."""
    root = ET.Element("additional")
    for k, closure in enumerate(closures):
        rerouter = ET.SubElement(
            root, "rerouter", {"id": f"closure-{k}", "edges": " ".join(closure.trigger_edges)}
        )
        interval = ET.SubElement(
            rerouter, "interval", {"begin": str(closure.begin_s), "end": str(closure.end_s)}
        )
        ET.SubElement(interval, "closingReroute", {"id": closure.edge_id})
    for k, slowdown in enumerate(slowdowns):
        sign = ET.SubElement(
            root, "variableSpeedSign", {"id": f"slowdown-{k}", "lanes": " ".join(slowdown.lane_ids)}
        )
        steps = (
            (slowdown.begin_s, slowdown.speed_mps),
            (slowdown.end_s, slowdown.normal_speed_mps),
        )
        for time_s, speed_mps in steps:
            ET.SubElement(sign, "step", {"time": str(time_s), "speed": f"{speed_mps:.2f}"})
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)


def write_background_trips(
    net_path: Path, path: Path, *, end_s: int, per_hour: int | Sequence[int], seed: int
) -> None:
    """randomTrips.py from t=0 to ``end_s`` at ``per_hour`` vehicles/hour, routable ones only.

    ``per_hour`` may be a list of rates, one per 5-minute interval (traffic.py): then the trips
    run from t=0 to the end of the last interval instead.
    """
    if isinstance(per_hour, int):
        rates = [str(per_hour)]
    else:
        rates = [str(rate) for rate in per_hour]
        end_s = traffic.INTERVAL_S * len(rates)
    command = [
        sys.executable,
        str(sumo_home() / "tools" / "randomTrips.py"),
        "--net-file",
        str(net_path),
        "--output-trip-file",
        str(path),
        "--begin",
        "0",
        "--end",
        str(end_s),
        "--insertion-rate",
        *rates,
        "--seed",
        str(seed),
        "--edge-permission",
        VCLASS,
        "--min-distance",
        "300",
        "--prefix",
        "bg",
        "--trip-attributes",
        'departLane="best" departSpeed="max"',
        "--validate",
    ]
    subprocess.run(command, check=True, env=sumo_env(), capture_output=True, cwd=path.parent)


def run_sumo(
    net_path: Path,
    route_files: list[Path],
    out_dir: Path,
    *,
    end_s: int,
    seed: int,
    van_ids: list[str],
    additional_files: list[Path] | None = None,
    fcd_lanes: bool = False,
) -> RunOutput:
    """Run SUMO at 1 s steps; return the vans' trajectories, stop events and run statistics.

    ``additional_files`` (disruptions) are loaded too; ``fcd_lanes`` adds each fix's lane.
    """
    fcd, stops, stats, tripinfo, log = (
        out_dir / name for name in ("fcd.xml", "stops.xml", "stats.xml", "tripinfo.xml", "log.txt")
    )
    command = [
        sumo_binary("sumo"),
        "--net-file",
        str(net_path),
        "--route-files",
        ",".join(str(p) for p in route_files),
        "--begin",
        "0",
        "--end",
        str(end_s),
        "--step-length",
        "1",
        "--seed",
        str(seed),
        "--time-to-teleport",
        str(TIME_TO_TELEPORT_S),
        "--fcd-output",
        str(fcd),
        "--fcd-output.geo",
        "true",
        "--fcd-output.attributes",
        "x,y,speed,angle,lane" if fcd_lanes else "x,y,speed,angle",
        "--device.fcd.explicit",
        ",".join(van_ids),
        "--stop-output",
        str(stops),
        "--statistic-output",
        str(stats),
        "--tripinfo-output",
        str(tripinfo),
        "--duration-log.statistics",
        "true",
        "--log",
        str(log),
        "--no-step-log",
        "true",
    ]
    if additional_files:
        command += ["--additional-files", ",".join(str(p) for p in additional_files)]
    subprocess.run(command, check=True, env=sumo_env(), capture_output=True)
    run_stats = RunStats(
        inserted=_inserted(stats),
        teleports=_teleports(stats),
        van_teleport_warnings=_van_teleports(log, van_ids),
        van_arrival_s=_arrivals(tripinfo, set(van_ids)),
    )
    return RunOutput(_read_fcd(fcd, set(van_ids)), _read_stops(stop_path=stops), run_stats)


def _read_fcd(path: Path, van_ids: set[str]) -> dict[str, list[Fix]]:
    out: dict[str, list[Fix]] = defaultdict(list)
    for _, step in ET.iterparse(path, events=("end",)):
        if step.tag != "timestep":
            continue
        time_s = float(step.attrib["time"])
        for vehicle in step.iter("vehicle"):
            vid = vehicle.attrib["id"]
            if vid in van_ids:
                out[vid].append(
                    Fix(
                        time_s,
                        lat=float(vehicle.attrib["y"]),
                        lon=float(vehicle.attrib["x"]),
                        speed_mps=float(vehicle.attrib["speed"]),
                        angle_deg=float(vehicle.attrib["angle"]),
                        lane_id=vehicle.attrib.get("lane", ""),
                    )
                )
        step.clear()
    return dict(out)


def _read_stops(stop_path: Path) -> dict[str, list[StopEvent]]:
    out: dict[str, list[StopEvent]] = defaultdict(list)
    for stop in ET.parse(stop_path).getroot().iter("stopinfo"):
        out[stop.attrib["id"]].append(
            StopEvent(
                lane_id=stop.attrib["lane"],
                end_pos_m=float(stop.attrib["pos"]),
                started_s=float(stop.attrib["started"]),
                ended_s=float(stop.attrib["ended"]),
            )
        )
    for events in out.values():
        events.sort(key=lambda e: e.started_s)
    return dict(out)


def _inserted(path: Path) -> int:
    vehicles = ET.parse(path).getroot().find("vehicles")
    return int(vehicles.attrib["inserted"]) if vehicles is not None else 0


def _teleports(path: Path) -> int:
    teleports = ET.parse(path).getroot().find("teleports")
    return int(teleports.attrib["total"]) if teleports is not None else 0


def _van_teleports(log: Path, van_ids: list[str]) -> tuple[str, ...]:
    quoted = tuple(f"'{vid}'" for vid in van_ids)
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return tuple(
        line for line in lines if "teleport" in line.lower() and any(q in line for q in quoted)
    )


def _arrivals(path: Path, van_ids: set[str]) -> dict[str, float]:
    return {
        info.attrib["id"]: float(info.attrib["arrival"])
        for info in ET.parse(path).getroot().iter("tripinfo")
        if info.attrib["id"] in van_ids
    }
