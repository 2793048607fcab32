"""The ingester's counts on ``/metrics``, read when scraped: messages by outcome, and the MQTT
side's backlog, lag and the fixes it coalesced under overload (telematics/shedding.py), so a
dispatcher's frozen vans are never the first sign that fixes were dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class IngestCollector:
    """A prometheus collector over ``app.state`` (its ingester and MQTT ingester, once the
    service has started them)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        ingester = getattr(self.state, "ingester", None)
        outcomes = CounterMetricFamily(
            "lastmile_ingest_messages",
            "Messages the ingester took, by outcome (applied, history, or why refused)",
            labels=["outcome"],
        )
        for outcome, count in sorted((ingester.counts if ingester is not None else {}).items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        mqtt = getattr(self.state, "mqtt", None)
        if mqtt is None:
            return
        yield CounterMetricFamily(
            "lastmile_mqtt_coalesced",
            "Older fixes of a device topic acknowledged without being stored while the "
            "ingester was overloaded (its newest fix was stored)",
            value=mqtt.coalesced,
        )
        yield GaugeMetricFamily(
            "lastmile_mqtt_backlog",
            "MQTT messages received and waiting for the ingester",
            value=mqtt.backlog,
        )
        yield GaugeMetricFamily(
            "lastmile_mqtt_lag_seconds",
            "How long the oldest message of the ingester's last turn had waited",
            value=mqtt.lag_s,
        )
