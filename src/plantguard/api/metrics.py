"""Prometheus metrics read from the services at scrape time (nothing is counted twice, nothing goes stale).

Each app gets its own CollectorRegistry, so several apps in one process (tests) never share series.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from plantguard.domain.alarms import PRIORITY_RANK, AlarmState
from plantguard.services import Services


_LINK_COUNTERS = (("requests", "Requests sent on the link"), ("errors", "Link failures"),
                  ("reconnects", "Reconnect attempts"), ("readings", "Readings delivered from the link"),
                  ("bad_readings", "Bad-quality readings from the link (device-reported faults)"))


def _link_metrics(sources: dict):
    """Per device link of every connector that reports links (Modbus, OPC UA, Sparkplug, replay...)."""
    up = GaugeMetricFamily("plantguard_link_up", "1 when the device link is online", labels=["source", "link"])
    latency = GaugeMetricFamily("plantguard_link_latency_seconds", "Moving average request round trip", labels=["source", "link"])
    counters = {k: CounterMetricFamily(f"plantguard_link_{k}", doc, labels=["source", "link"]) for k, doc in _LINK_COUNTERS}
    for src, h in sorted(sources.items()):
        for link, lh in sorted((h.get("links") or {}).items()):
            if not isinstance(lh, dict):
                continue
            up.add_metric([src, link], 1 if lh.get("state") == "online" else 0)
            if lh.get("latency_ms") is not None:
                latency.add_metric([src, link], lh["latency_ms"] / 1000)
            for k in counters:
                if isinstance(lh.get(k), (int, float)):
                    counters[k].add_metric([src, link], lh[k])
    yield up
    yield latency
    yield from counters.values()


class PlatformCollector(Collector):
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self):
        p = self.svc
        st = p.status.pipeline_stats()
        yield CounterMetricFamily("plantguard_ingest_accepted", "Readings stored", value=st.accepted)
        rejected = CounterMetricFamily("plantguard_ingest_rejected", "Readings refused, by reason", labels=["reason"])
        for reason, n in sorted(dict(st.rejected_by_reason).items()):  # copy: the writer thread adds keys
            rejected.add_metric([reason], n)
        yield rejected
        yield CounterMetricFamily("plantguard_ingest_duplicates", "Readings already stored, ignored", value=st.duplicates)
        yield CounterMetricFamily("plantguard_ingest_batches", "Batches submitted to the pipeline", value=st.batches)
        yield GaugeMetricFamily("plantguard_ingest_queue_readings", "Readings waiting in the ingest queue", value=st.queued_readings)
        yield GaugeMetricFamily("plantguard_ingest_lag_seconds", "Submit to durable write, newest write", value=st.lag_us_last / 1e6)
        yield GaugeMetricFamily("plantguard_ingest_lag_max_seconds", "Submit to durable write, worst since start", value=st.lag_us_max / 1e6)
        yield GaugeMetricFamily("plantguard_ingest_lag_now_seconds", "Wait of the oldest reading not yet written", value=p.status.ingest().lag_ms / 1000.0)
        yield CounterMetricFamily("plantguard_store_write_errors", "Failed store writes", value=st.write_errors)
        yield CounterMetricFamily("plantguard_processor_errors", "Processor (alarm engine ...) failures", value=st.processor_errors)
        yield GaugeMetricFamily("plantguard_points", "Points known to the registry", value=p.status.points())
        yield from _security(p, st)

        health = p.status.health()
        yield GaugeMetricFamily("plantguard_writer_up", "1 when the ingest writer thread runs", value=1 if health["writer_alive"] else 0)
        yield GaugeMetricFamily("plantguard_up", "1 when health is ok, 0 when degraded", value=1 if health["status"] == "ok" else 0)
        sources = GaugeMetricFamily("plantguard_source_up", "1 when the source is healthy", labels=["source"])
        running = GaugeMetricFamily("plantguard_source_running", "1 while the source's thread or loop runs", labels=["source"])
        restarts = CounterMetricFamily("plantguard_source_restarts", "Restarts of a source by the supervisor", labels=["source"])
        for name, h in sorted(health["sources"].items()):
            sources.add_metric([name], 1 if h.get("ok", True) else 0)
            running.add_metric([name], 0 if h.get("thread_alive") is False else 1)
            restarts.add_metric([name], h.get("supervisor_restarts", 0))
        yield sources
        yield running
        yield restarts
        yield from _link_metrics(health["sources"])

        # event-bus subscribers are named in code, never from input: the label set is bounded
        dropped = CounterMetricFamily("plantguard_events_dropped", "Events a subscriber of the event bus missed (its queue was full)", labels=["subscriber"])
        errors = CounterMetricFamily("plantguard_events_handler_errors", "Events a subscriber failed to handle", labels=["subscriber"])
        for name, sst in sorted(p.status.event_bus().items()):
            dropped.add_metric([name], sst["dropped"])
            errors.add_metric([name], sst["errors"])
        yield dropped
        yield errors

        if p.alarms.enabled:
            records = p.alarms.list(active=True)
            # shelved alarms are suppressed for operators, so they do not count as active (as in active_count())
            by_priority = Counter(a.priority for a in records if a.state != AlarmState.shelved.value)
            active = GaugeMetricFamily("plantguard_alarms_active", "Active, unshelved alarms, by priority", labels=["priority"])
            for prio in PRIORITY_RANK:
                active.add_metric([prio], by_priority.get(prio, 0))
            yield active
            shelved = sum(1 for a in p.alarms.list(state=AlarmState.shelved.value))
            yield GaugeMetricFamily("plantguard_alarms_shelved", "Alarms shelved by an operator", value=shelved)


def build_registry(svc: Services) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(svc))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def _security(p, st):
    """Security signals: failed logins and lockouts, behavioural events by rule, quarantined devices and readings."""
    acc = p.accounts
    if acc is not None:
        yield CounterMetricFamily("plantguard_login_failures", "Failed logins (any reason)", value=acc.login_failures)
        yield CounterMetricFamily("plantguard_login_lockouts", "User names or addresses locked after repeated failures", value=acc.lockouts)
    beh = p.behaviour
    if beh is not None:
        yield CounterMetricFamily("plantguard_security_events", "Behavioural security events raised", value=beh.events)
        yield CounterMetricFamily("plantguard_security_detector_errors", "Behavioural detection failures (ingest went on)", value=beh.errors)
    q = p.quarantine
    if q is not None:
        yield GaugeMetricFamily("plantguard_quarantined_devices", "Devices in quarantine", value=len(q.list()))
        yield CounterMetricFamily("plantguard_ingest_quarantined", "Readings of quarantined devices stored aside", value=st.quarantined)
