"""The plant model (ISA-95 style): site > area > line > asset > device > point, plus the platform settings.

The whole plant lives in one YAML file. `load_config` reports every problem at once, each with the exact
field path (``sites[0].areas[0].lines[0].assets[1].devices[0].points[2].range.high``).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PrivateAttr, field_validator, model_validator

from plantguard.errors import ConfigProblem
from plantguard.timeutil import US, parse_duration_us

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$", description="letters, digits, '_' or '-'; at most 64")]
TAG_SEP = "/"


class _Strict(BaseModel):
    # No NaN or infinity anywhere in the model: a limit, gain or bound must be a real number. Defaults are
    # validated too, so a default duration is parsed like a given one.
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True, allow_inf_nan=False,
                              validate_default=True)


DAY_US = 86400 * US
# Bounds of the durations in the model. Every duration is checked against its bound when the model is loaded
# (file, API, stored version), so that no arithmetic of the runtime can overflow on a value that passed.
PERIOD_MAX_US = 30 * DAY_US  # an expected sampling period (a monthly lab sample is the slowest we know)
DELAY_MAX_US = 7 * DAY_US  # alarm on/off delays
LEAD_MAX_US = 365 * DAY_US  # predictive lead time
MAX_COUNT = 10_000  # multiples of a period (stale after N periods, offline after N periods)
MAX_SECONDS = 30 * 86400.0  # OEE windows and gaps given as seconds


class DurationText(str):
    """A duration as written ('5s', '2h'), parsed once at load: `.us` is its length in microseconds."""
    us: int


class DurationSeconds(float):
    """A duration given as a number of seconds, parsed once at load: `.us` is its length in microseconds."""
    us: int


def typed_duration(v: Any, us: int):
    """`v` as given (text or seconds, so documents round-trip unchanged) carrying its parsed length `.us`."""
    out = DurationText(v) if isinstance(v, str) else DurationSeconds(v)
    out.us = us
    return out


def _plain_duration(v: Any) -> str | float:
    return str(v) if isinstance(v, str) else float(v)


#: a duration field: text or seconds, serialised as plain text or number (the parsed .us stays in memory)
DurationValue = Annotated[str | float, PlainSerializer(_plain_duration, return_type=str | float)]


def us_of(d: Any) -> int:
    """Microseconds of a model duration (parsed at load; a value set in code is parsed here)."""
    us = getattr(d, "us", None)
    return us if isinstance(us, int) else parse_duration_us(d)


def _duration(max_us: int, min_us: int = 0):
    """A field validator: the value parses as a duration within [min_us, max_us]; the text is kept as given and
    its length in microseconds rides along as `.us`, so the runtime never parses it again."""

    def check(v):
        return typed_duration(v, parse_duration_us(v, max_us=max_us, min_us=min_us))

    return check


class DataType(str, Enum):
    float = "float"
    int = "int"
    bool = "bool"
    state = "state"  # enumerated machine state, stored as its integer code


class Criticality(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Duration(str):
    """A duration given as seconds or text ('500ms', '5s', '10m', '2h', '30d')."""


def _dur(v: Any) -> int:
    return parse_duration_us(v)


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


class StorageConfig(_Strict):
    backend: Literal["embedded", "postgres"] = "embedded"
    data_dir: str = "./data"
    postgres_dsn: str | None = Field(None, description="e.g. postgresql://user@127.0.0.1:5432/plantguard")
    retention_raw: DurationValue = "30d"
    retention_1m: DurationValue = "365d"
    retention_1h: DurationValue = "3650d"
    memory_limit: str = Field("1GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
                              description="cache limit of the embedded store (DuckDB's own default is 80% of RAM)")
    key_dir: str | None = Field(None, description="where the keys sealing secrets and learned state live (default "
                                "<data_dir>/keys); back them up apart from the store")

    _v = field_validator("retention_raw", "retention_1m", "retention_1h")(_duration(36_500 * DAY_US, min_us=3600 * US))


class IngestConfig(_Strict):
    unknown_points: Literal["reject", "auto_register"] = "reject"
    max_future: DurationValue = Field("5m", description="readings further in the future than this are rejected")
    max_queue_readings: int = Field(2_000_000, ge=1000, le=100_000_000, description="bound of the ingest queue; producers wait beyond it")
    max_batch_readings: int = Field(200_000, ge=100, le=10_000_000, description="readings the writer takes in one turn")
    max_payload_bytes: int = Field(8 * 1024 * 1024, ge=1024, le=1024**3)
    lag_degraded: DurationValue = Field("30s", description="health is degraded while a write waited longer than this in the queue")
    partition_by: Literal["site", "area", "line", "asset"] = Field(
        "line", description="the unit of learned state (dedupe watermarks, alarm and analytics state) one worker owns")

    _v = field_validator("max_future")(_duration(36_500 * DAY_US))
    _lag = field_validator("lag_degraded")(_duration(DAY_US, min_us=100_000))


class Webhook(_Strict):
    url: str
    min_priority: Literal["low", "medium", "high", "urgent"] = "low"
    retries: int = Field(5, ge=0, le=20)
    timeout: float = Field(5.0, gt=0, le=300)


class AlarmConfig(_Strict):
    webhooks: list[Webhook] = Field(default_factory=list)
    webhook_allowed_networks: list[str] = Field(
        default_factory=list, max_length=100,
        description="networks (CIDR) webhooks may reach although they are loopback, link-local or metadata "
                    "addresses, e.g. ['127.0.0.1/32'] for a receiver on this host")
    check_interval: DurationValue = "1s"

    @model_validator(mode="after")
    def _webhook_targets(self):
        import ipaddress

        from plantguard.domain.addresses import check_url

        for n in self.webhook_allowed_networks:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise ValueError(f"webhook_allowed_networks: {n!r} is not a network (CIDR)") from None
        for i, wh in enumerate(self.webhooks):
            why = check_url(wh.url, self.webhook_allowed_networks, resolve=False)
            if why:
                raise ValueError(f"webhooks[{i}].url: {why} (allow it with alarms.webhook_allowed_networks)")
        return self

    _v = field_validator("check_interval")(_duration(3600 * US, min_us=10_000))


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    tls_cert: str | None = Field(None, description="PEM certificate (chain) file: serve HTTPS; required to listen beyond loopback")
    tls_key: str | None = Field(None, description="PEM private key file of tls_cert")
    allowed_hosts: list[str] = Field(["127.0.0.1", "localhost", "::1"], max_length=100,
                                     description="host names requests may name (Host header); '*' for any. Refuses DNS rebinding")


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


# ------------------------------------------------------------------------------------------------------
def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _list(d: dict, key: str) -> list:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, list) else []


class ModelChecks:
    """Checks of the plant model that need a capability's own code (does this detector exist and build with these
    parameters? is this shift calendar consistent?). The domain calls them while it walks the document; the
    config package passes the implementation (config/checks.py), so the domain imports no capability."""

    def site(self, site: dict, path: str) -> list[ConfigProblem]:
        return []

    def point_anomaly(self, settings: dict, path: str) -> list[ConfigProblem]:
        return []

    def asset_anomaly(self, settings: dict, path: str) -> list[ConfigProblem]:
        return []

    def rul(self, settings: dict, path: str) -> list[ConfigProblem]:
        return []


NO_CHECKS = ModelChecks()


def semantic_problems(data: dict, checks: ModelChecks = NO_CHECKS) -> list[ConfigProblem]:
    """Checks that span fields: unique ids per level, limit ordering, limits inside the range, state codes, time
    zones. Works on the raw document, tolerating fields of the wrong shape (the structural pass reports those),
    so a file gets every problem in one report."""
    problems: list[ConfigProblem] = []

    def dupes(items, path):
        seen: dict[str, int] = {}
        for i, it in enumerate(items):
            ident = it.get("id") if isinstance(it, dict) else None
            if not isinstance(ident, str):
                continue
            if ident in seen:
                problems.append(ConfigProblem(f"{path}[{i}].id", f"duplicate id {ident!r} (also at {path}[{seen[ident]}])"))
            else:
                seen[ident] = i

    def children(items):
        return [(i, it) for i, it in enumerate(items) if isinstance(it, dict)]

    sites = _list(data, "sites")
    dupes(sites, "sites")
    for si, s in children(sites):
        sp = f"sites[{si}]"
        tz = s.get("timezone", "UTC")
        if isinstance(tz, str):
            try:
                import zoneinfo

                zoneinfo.ZoneInfo(tz)
            except Exception:
                problems.append(ConfigProblem(f"{sp}.timezone", f"unknown time zone {tz!r} (use an IANA name like 'Europe/Paris')"))
        dupes(_list(s, "areas"), f"{sp}.areas")
        problems.extend(checks.site(s, sp))
        for ai, a in children(_list(s, "areas")):
            ap = f"{sp}.areas[{ai}]"
            dupes(_list(a, "lines"), f"{ap}.lines")
            for li, ln in children(_list(a, "lines")):
                lp = f"{ap}.lines[{li}]"
                problems.extend(_oee_problems(ln, lp))
                dupes(_list(ln, "assets"), f"{lp}.assets")
                for xi, asset in children(_list(ln, "assets")):
                    xp = f"{lp}.assets[{xi}]"
                    problems.extend(_gate_problems(ln, asset, xp))
                    dupes(_list(asset, "devices"), f"{xp}.devices")
                    problems.extend(_asset_analytics_problems(asset, xp, checks))
                    for di, d in children(_list(asset, "devices")):
                        dp = f"{xp}.devices[{di}]"
                        dupes(_list(d, "points"), f"{dp}.points")
                        for pi, p in children(_list(d, "points")):
                            problems.extend(point_problems(p, f"{dp}.points[{pi}]", checks))
    storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
    if storage.get("backend") == "postgres" and not storage.get("postgres_dsn"):
        problems.append(ConfigProblem("storage.postgres_dsn", "required when storage.backend is 'postgres'"))
    return problems


def _asset_analytics_problems(asset: dict, xp: str, checks: ModelChecks) -> list[ConfigProblem]:
    """Asset analytics name points as 'device/point' inside the asset: they must exist and be numeric."""
    an = asset.get("analytics") if isinstance(asset.get("analytics"), dict) else {}
    known = {}
    for d in _list(asset, "devices"):
        if isinstance(d, dict):
            for p in _list(d, "points"):
                if isinstance(p, dict) and isinstance(d.get("id"), str) and isinstance(p.get("id"), str):
                    known[f"{d['id']}/{p['id']}"] = p.get("data_type", "float")
    out = []

    def check(path, field):
        if not isinstance(path, str):
            return
        if path not in known:
            out.append(ConfigProblem(field, f"no point {path!r} in this asset (give 'device/point'; known: {', '.join(sorted(known)) or 'none'})"))
        elif known[path] in ("bool", "state"):
            out.append(ConfigProblem(field, f"point {path!r} is of type {known[path]}; analytics need a numeric point"))

    mv = an.get("anomaly") if isinstance(an.get("anomaly"), dict) else None
    if mv is not None:
        pts = mv.get("points") if isinstance(mv.get("points"), list) else []
        for i, path in enumerate(pts):
            check(path, f"{xp}.analytics.anomaly.points[{i}]")
        if len(set(map(str, pts))) != len(pts):
            out.append(ConfigProblem(f"{xp}.analytics.anomaly.points", "a point is listed twice"))
        out.extend(checks.asset_anomaly(mv, f"{xp}.analytics.anomaly"))
    rul = an.get("rul") if isinstance(an.get("rul"), dict) else None
    if rul is not None:
        check(rul.get("point"), f"{xp}.analytics.rul.point")
        if _num(rul.get("failure_threshold")) is not None:
            out.extend(checks.rul(rul, f"{xp}.analytics.rul"))
    return out


def _gate_problems(ln: dict, asset: dict, xp: str) -> list[ConfigProblem]:
    """analytics.only_when reads the machine state from the line's oee.state_point on the same asset."""
    out = []
    oee = ln.get("oee") if isinstance(ln.get("oee"), dict) else None
    state_id = oee.get("state_point", "state") if oee else None
    ids = {p.get("id") for d in _list(asset, "devices") if isinstance(d, dict) for p in _list(d, "points")
           if isinstance(p, dict) and isinstance(p.get("id"), str)}
    for di, d in enumerate(_list(asset, "devices")):
        for pi, p in enumerate(_list(d, "points") if isinstance(d, dict) else []):
            an = p.get("analytics") if isinstance(p, dict) and isinstance(p.get("analytics"), dict) else {}
            if an.get("only_when") is None:
                continue
            path = f"{xp}.devices[{di}].points[{pi}].analytics.only_when"
            if oee is None:
                out.append(ConfigProblem(path, "needs the line's oee section: its state_categories say which state codes are running"))
            elif isinstance(state_id, str) and state_id not in ids:
                out.append(ConfigProblem(path, f"this asset has no state point {state_id!r} (the line's oee.state_point)"))
    return out


def _oee_problems(ln: dict, lp: str) -> list[ConfigProblem]:
    oee = ln.get("oee") if isinstance(ln.get("oee"), dict) else None
    if oee is None:
        return []
    out = []
    if (oee.get("ideal_rate_per_h") is None) == (oee.get("ideal_cycle_s") is None):
        out.append(ConfigProblem(f"{lp}.oee.ideal_rate_per_h", "give exactly one of ideal_rate_per_h and ideal_cycle_s"))
    assets = [x for x in _list(ln, "assets") if isinstance(x, dict)]
    ca = oee.get("counting_asset")
    if isinstance(ca, str) and ca not in {x.get("id") for x in assets if isinstance(x.get("id"), str)}:
        out.append(ConfigProblem(f"{lp}.oee.counting_asset", f"no asset {ca!r} in this line"))
    target = next((x for x in assets if x.get("id") == ca), assets[-1] if assets else None) if ca is None or isinstance(ca, str) else None
    if target is not None:
        ids = {p.get("id") for d in _list(target, "devices") if isinstance(d, dict) for p in _list(d, "points")
               if isinstance(p, dict) and isinstance(p.get("id"), str)}
        for fld, default in (("state_point", "state"), ("good_point", "good-count")):
            pid = oee.get(fld, default)
            if isinstance(pid, str) and pid not in ids:
                out.append(ConfigProblem(f"{lp}.oee.{fld}", f"asset {target.get('id')!r} has no point {pid!r}"))
    return out


def point_problems(p: dict | Point, pp: str, checks: ModelChecks = NO_CHECKS) -> list[ConfigProblem]:
    """Cross-field checks of one point (a raw mapping or a validated Point)."""
    if isinstance(p, Point):
        p = p.model_dump(mode="json", exclude_none=True)
    problems: list[ConfigProblem] = []
    rng = p.get("range") if isinstance(p.get("range"), dict) else None
    low, high = (_num(rng.get("low")), _num(rng.get("high"))) if rng else (None, None)
    if low is not None and high is not None and not low < high:
        problems.append(ConfigProblem(f"{pp}.range", f"low ({low:g}) must be below high ({high:g})"))
    dtype = p.get("data_type", "float")
    if dtype == "state" and not p.get("states"):
        problems.append(ConfigProblem(f"{pp}.states", "a point of data_type 'state' needs its states (code: name)"))
    if dtype != "state" and p.get("states"):
        problems.append(ConfigProblem(f"{pp}.states", "only points of data_type 'state' have states"))
    alarms = p.get("alarms") if isinstance(p.get("alarms"), dict) else {}
    lim = alarms.get("limits") if isinstance(alarms.get("limits"), dict) else None
    if lim is not None:
        order = [(n, _num(lim.get(n))) for n in ("lolo", "lo", "hi", "hihi") if _num(lim.get(n)) is not None]
        if not order and not any(lim.get(n) is not None for n in ("lolo", "lo", "hi", "hihi")):
            problems.append(ConfigProblem(f"{pp}.alarms.limits", "set at least one of hihi, hi, lo, lolo"))
        for (n1, v1), (n2, v2) in zip(order, order[1:]):
            if not v1 < v2:
                problems.append(ConfigProblem(f"{pp}.alarms.limits.{n2}", f"{n2} ({v2:g}) must be above {n1} ({v1:g})"))
        if low is not None and high is not None:
            for n, v in order:
                if not low <= v <= high:
                    problems.append(ConfigProblem(f"{pp}.alarms.limits.{n}", f"{n} ({v:g}) is outside the engineering range [{low:g}, {high:g}]"))
    an = p.get("analytics") if isinstance(p.get("analytics"), dict) else {}
    spc = an.get("spc") if isinstance(an.get("spc"), dict) else None
    if an and dtype in ("bool", "state"):
        problems.append(ConfigProblem(f"{pp}.analytics", f"analytics need a numeric point; this one is of type {dtype}"))
    if spc is not None:
        known_rules = {f"nelson-{i}" for i in range(1, 9)} | {"moving_range", "ewma", "cusum"}
        for i, r in enumerate(spc.get("alarm_rules") or []):
            if isinstance(r, str) and r not in known_rules:
                problems.append(ConfigProblem(f"{pp}.analytics.spc.alarm_rules[{i}]", f"unknown rule {r!r} (known: {', '.join(sorted(known_rules))})"))
        amin, clr = spc.get("alarm_min_points", 4), spc.get("clear_after", 16)
        if isinstance(amin, int) and isinstance(clr, int) and amin > clr:
            problems.append(ConfigProblem(f"{pp}.analytics.spc.alarm_min_points", f"must be at most clear_after ({clr})"))
        if (spc.get("center") is None) != (spc.get("sigma") is None):
            problems.append(ConfigProblem(f"{pp}.analytics.spc", "give both center and sigma for fixed limits, or neither for a phase I baseline"))
        lsl, usl = _num(spc.get("lsl")), _num(spc.get("usl"))
        if lsl is not None and usl is not None and not lsl < usl:
            problems.append(ConfigProblem(f"{pp}.analytics.spc.usl", f"usl ({usl:g}) must be above lsl ({lsl:g})"))
    ad = an.get("anomaly") if isinstance(an.get("anomaly"), dict) else None
    if ad is not None:
        problems.extend(checks.point_anomaly(ad, f"{pp}.analytics.anomaly"))
    return problems



