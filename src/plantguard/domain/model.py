"""The plant model (ISA-95 style): site > area > line > asset > device > point, and the whole file (`PlantConfig`:
the hierarchy with the platform settings of plantguard.domain.settings; the semantic checks: plantguard.domain.checks).

The whole plant lives in one YAML file. `load_config` reports every problem at once, each with the exact
field path (``sites[0].areas[0].lines[0].assets[1].devices[0].points[2].range.high``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator

from plantguard.domain.fields import (
    Criticality, DELAY_MAX_US, DataType, DurationValue, Ident, LEAD_MAX_US, MAX_COUNT, MAX_SECONDS, PERIOD_MAX_US,
    TAG_SEP, _Strict, _duration)
from plantguard.domain.settings import AlarmConfig, ApiConfig, IngestConfig, StorageConfig


class Range(_Strict):
    low: float
    high: float


class LimitAlarm(_Strict):
    """HIHI/HI/LO/LOLO limits with deadband and on/off delays (ISA-18.2 style)."""

    hihi: float | None = None
    hi: float | None = None
    lo: float | None = None
    lolo: float | None = None
    deadband: float = Field(0.0, ge=0, description="the value must come back this far inside a limit to clear")
    on_delay: DurationValue = Field("0s", description="the limit must be exceeded this long before the alarm raises")
    off_delay: DurationValue = Field("0s", description="the value must be back in range this long before the alarm clears")
    priority: Literal["low", "medium", "high", "urgent"] = "medium"

    _v = field_validator("on_delay", "off_delay")(_duration(DELAY_MAX_US))


class RateOfChangeAlarm(_Strict):
    max_per_second: float = Field(gt=0, description="absolute change per second above which the alarm raises")
    priority: Literal["low", "medium", "high", "urgent"] = "medium"


class StaleAlarm(_Strict):
    periods: float = Field(5, gt=0, le=MAX_COUNT, description="raise when no reading arrived for this many expected sampling periods")
    priority: Literal["low", "medium", "high", "urgent"] = "low"


class PointAlarms(_Strict):
    limits: LimitAlarm | None = None
    rate_of_change: RateOfChangeAlarm | None = None
    stale: StaleAlarm | None = None


Priority = Literal["low", "medium", "high", "urgent"]


class SpcSettings(_Strict):
    """Statistical process control of one point: individuals chart with EWMA and CUSUM, Nelson rules."""

    baseline: int = Field(100, ge=20, le=100_000, description="readings collected for phase I when no center/sigma is given")
    center: float | None = Field(None, description="fixed center line (with sigma): skips phase I")
    sigma: float | None = Field(None, gt=0, description="fixed process sigma (with center)")
    rules: Literal["nelson", "western_electric"] | list[Annotated[int, Field(ge=1, le=8)]] = Field(
        "nelson", description="rule set: nelson (1-8), western_electric, or a list of Nelson rule numbers")
    ewma_lambda: float = Field(0.2, gt=0, le=1, description="EWMA weight of the newest reading")
    ewma_l: float = Field(3.0, gt=0, description="EWMA limit width in sigmas")
    cusum_k: float = Field(0.5, ge=0, description="CUSUM reference value (slack) in sigmas")
    cusum_h: float = Field(5.0, gt=0, description="CUSUM decision interval in sigmas")
    lsl: float | None = Field(None, description="lower specification limit, for capability (Cp, Cpk...)")
    usl: float | None = Field(None, description="upper specification limit, for capability")
    alarm: bool = Field(True, description="raise an SPC alarm when the process is out of statistical control")
    # Defaults measured in bench/spc_alarm_rate.py: about 6 false alarms per 100,000 in-control readings, a
    # 2-sigma shift alarmed after ~12 readings. Every rule's violations are still recorded as events.
    alarm_rules: list[str] = Field(["nelson-1", "cusum"],
                                   description="violations that count towards the alarm (nelson-1..8, moving_range, ewma, cusum); all are recorded as events")
    alarm_min_points: int = Field(4, ge=1, le=64, description="raise when this many of the last clear_after readings violated an alarm rule")
    clear_after: int = Field(16, ge=1, le=64, description="the SPC alarm returns to normal after this many readings without an alarm-rule violation")
    priority: Priority = "low"


class AnomalySettings(_Strict):
    """Streaming anomaly detection on one point (univariate)."""

    detector: str = Field("default", description="detector name: 'default' is the platform's default wiring "
                                                  "(docs/analytics/anomaly.md), or one of the registered detectors")
    threshold: float = Field(0.9, gt=0, lt=1, description="score in (0, 1) at or above which a reading is anomalous")
    params: dict[str, Any] = Field(default_factory=dict, description="detector parameters")
    alarm: bool = True
    priority: Priority = "medium"


class PointAnalytics(_Strict):
    spc: SpcSettings | None = None
    anomaly: AnomalySettings | None = None
    only_when: list[Literal["running", "idle", "unplanned_stop", "setup", "planned_stop", "unknown"]] | None = Field(
        None, description="analyse only while the asset's machine state (the line's oee.state_point on this asset) is in "
                          "one of these OEE categories, e.g. [running]: readings taken while the machine is stopped are "
                          "neither judged nor learned, and capability leaves them out")

    @field_validator("only_when", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v


class AssetAnomalySettings(_Strict):
    """Multivariate anomaly detection over several of an asset's points together."""

    points: list[str] = Field(min_length=2, description="'device/point' paths inside the asset")
    detector: str = Field("default", description="multivariate detector name; 'default' is the platform's default "
                                                  "wiring for assets (Mahalanobis distance, then likelihood and episodes)")
    threshold: float = Field(0.95, gt=0, lt=1)
    params: dict[str, Any] = Field(default_factory=dict)
    alarm: bool = True
    priority: Priority = "medium"


class RulSettings(_Strict):
    """Remaining useful life from a condition indicator (e.g. bearing vibration) and a failure threshold."""

    point: str = Field(description="'device/point' path of the condition indicator inside the asset")
    failure_threshold: float = Field(description="value of the indicator at which the asset is considered failed")
    lead_time: DurationValue = Field("4h", description="raise the predictive alert when the lower bound of the remaining life falls below this")
    params: dict[str, Any] = Field(default_factory=dict, description="model parameters (see docs/analytics/rul.md)")
    alarm: bool = True
    priority: Priority = "high"

    _v = field_validator("lead_time")(_duration(LEAD_MAX_US))


class AssetAnalytics(_Strict):
    anomaly: AssetAnomalySettings | None = None
    rul: RulSettings | None = None


class Point(_Strict):
    id: Ident
    name: str | None = None
    unit: str = ""
    data_type: DataType = DataType.float
    range: Range | None = Field(None, description="engineering range; readings outside it are rejected")
    period: DurationValue = Field("1s", description="expected sampling period")
    criticality: Criticality = Criticality.medium
    states: dict[int, str] | None = Field(None, description="for data_type state: code -> name")
    alarms: PointAlarms | None = None
    analytics: PointAnalytics | None = Field(None, description="SPC and anomaly detection on this point")

    _v = field_validator("period")(_duration(PERIOD_MAX_US, min_us=1000))


class Inventory(_Strict):
    """What a device is, for the posture audit and the risk register: advisories are matched on vendor, product
    and firmware; criticality and owner weigh and route the findings."""

    vendor: str | None = Field(None, max_length=200)
    product: str | None = Field(None, max_length=200, description="product name as the vendor's advisories name it")
    model: str | None = Field(None, max_length=200)
    firmware: str | None = Field(None, max_length=100, description="firmware or software version")
    serial: str | None = Field(None, max_length=200)
    owner: str | None = Field(None, max_length=200, description="who answers for the device (a person or team)")
    criticality: Literal["low", "medium", "high", "safety"] | None = Field(None, description="what its failure or compromise costs")


class Device(_Strict):
    id: Ident
    name: str | None = None
    protocol: str = Field("mqtt", description="how the device reaches plantguard (informational here)")
    inventory: Inventory | None = Field(None, description="vendor, product, firmware, owner, criticality (the posture audit and risk register)")
    mode: Literal["live", "shadow"] = Field("live", description="shadow: data is stored and flagged, but raises no alarms (pilots)")
    offline_after_periods: float = Field(10, gt=0, le=MAX_COUNT, description="device offline when none of its points reported for this many periods")
    points: list[Point] = Field(default_factory=list)


class Asset(_Strict):
    id: Ident
    name: str | None = None
    kind: str = ""
    devices: list[Device] = Field(default_factory=list)
    analytics: AssetAnalytics | None = Field(None, description="multivariate anomaly detection and remaining useful life")


OeeCategory = Literal["running", "idle", "unplanned_stop", "setup", "planned_stop", "unknown"]


class OeeSettings(_Strict):
    """How a line's OEE and its machines' maintenance KPIs are read from state points and counters."""

    counting_asset: Ident | None = Field(None, description="machine whose state and good counter define the line (default: the last asset)")
    state_point: Ident = Field("state", description="id of the machine-state point on each asset")
    good_point: Ident = Field("good-count", description="id of the good-units counter point")
    bad_point: Ident = Field("bad-count", description="id of the rejected-units counter point")
    ideal_rate_per_h: float | None = Field(None, gt=0, le=1e9, description="rated speed of the line (its bottleneck), units per hour")
    ideal_cycle_s: float | None = Field(None, ge=1e-6, le=MAX_SECONDS, description="alternative to ideal_rate_per_h: ideal seconds per unit")
    state_categories: dict[int, OeeCategory] = Field(description="state code -> running | idle | unplanned_stop | setup | planned_stop | unknown")
    max_gap_s: float | None = Field(300, gt=0, le=MAX_SECONDS, description="a state sample older than this is unknown time (null: states reported by exception)")
    minor_stop_max_s: float = Field(300, ge=0, le=MAX_SECONDS, description="stops up to this long are minor stops (a performance loss)")
    startup_window_s: float = Field(300, ge=0, le=MAX_SECONDS, description="rejects within this long after a restart are startup rejects")
    counter_modulus: float | None = Field(None, gt=0, le=2.0**64, description="wrap value of the PLC counters (e.g. 4294967296); null: a drop is a reset")
    min_coverage: float = Field(0.5, ge=0, le=1, description="share of a period with known state below which it is insufficient_data")
    min_failure_s: float = Field(0, ge=0, le=MAX_SECONDS, description="unplanned stops shorter than this are not failures in MTBF/MTTR")


class Line(_Strict):
    id: Ident
    name: str | None = None
    assets: list[Asset] = Field(default_factory=list)
    oee: OeeSettings | None = Field(None, description="OEE per line, shift and day; maintenance and quality KPIs")


class Shift(_Strict):
    name: str = Field(min_length=1)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local wall-clock start, HH:MM")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", description="local end, HH:MM; at or before start crosses midnight")


class Area(_Strict):
    id: Ident
    name: str | None = None
    lines: list[Line] = Field(default_factory=list)


class Site(_Strict):
    id: Ident
    name: str | None = None
    timezone: str = "UTC"
    shifts: list[Shift] = Field(default_factory=list, description="shift calendar in the site's time zone (OEE per shift)")
    day_start: str = Field("00:00", description="start of the production day: HH:MM local or 'first_shift'")
    areas: list[Area] = Field(default_factory=list)




class PlantConfig(_Strict):
    """Everything plantguard needs: the plant hierarchy and the platform settings."""

    version: Literal[1] = 1
    sites: list[Site] = Field(default_factory=list)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    alarms: AlarmConfig = Field(default_factory=AlarmConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    connectors: list[dict] = Field(default_factory=list, description="connector instances (modbus, opcua, sparkplug, replay...), each validated by its own schema")
    gateway: dict | None = Field(None, description="edge gateway settings (`plantguard gateway`), validated by the gateway's own schema")
    # sections owned by registered capabilities (plantguard.capabilities), validated by their own models
    _sections: dict[str, Any] = PrivateAttr(default_factory=dict)

    def section(self, name: str) -> Any:
        """The validated settings of a capability's section (None when the file has none)."""
        return self._sections.get(name)

    # --- navigation -----------------------------------------------------------------------------------
    def iter_points(self):
        """Yields (tag, site, area, line, asset, device, point) for every point, tag = 'site/area/line/asset/device/point'."""
        for s in self.sites:
            for a in s.areas:
                for ln in a.lines:
                    for asset in ln.assets:
                        for d in asset.devices:
                            for p in d.points:
                                yield TAG_SEP.join((s.id, a.id, ln.id, asset.id, d.id, p.id)), s, a, ln, asset, d, p

    def iter_devices(self):
        """Yields (device_path, device) with device_path = 'site/area/line/asset/device'."""
        for s in self.sites:
            for a in s.areas:
                for ln in a.lines:
                    for asset in ln.assets:
                        for d in asset.devices:
                            yield TAG_SEP.join((s.id, a.id, ln.id, asset.id, d.id)), d


def where(tag: str) -> str:
    """A tag as operators read it: 'bearing-vibration on filler-feed-pump' for a point, the asset's id for an
    asset path, the tag itself otherwise."""
    parts = tag.split(TAG_SEP)
    if len(parts) == 6:
        return f"{parts[5]} on {parts[3]}"
    return parts[-1] if len(parts) == 4 else tag


def state_gate(line: Line, asset: Asset, point: Point) -> tuple[str, tuple[int, ...]] | None:
    """For a point whose analytics run only in some machine states (analytics.only_when): ('device/point' of the
    asset's machine-state point, the state codes allowed), from the line's oee section; None when not gated."""
    if point.analytics is None or not point.analytics.only_when or line.oee is None:
        return None
    dev = next((d for d in asset.devices for p in d.points if p.id == line.oee.state_point), None)
    if dev is None:
        return None
    allowed = tuple(sorted(c for c, cat in line.oee.state_categories.items() if cat in point.analytics.only_when))
    return f"{dev.id}{TAG_SEP}{line.oee.state_point}", allowed
