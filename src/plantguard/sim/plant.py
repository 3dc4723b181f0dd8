"""The simulated bottling line: its plant model (a config dict for parse_config) and how each point behaves.

    site1 / packaging / bottling-line-1
      filler-feed-pump  P-101   plc (Modbus TCP): discharge pressure, flow, motor current, motor temperature, running
                                wsn (MQTT wireless): bearing vibration RMS, bearing temperature
      conveyor          CV-201  plc (Modbus TCP): motor current, belt speed, motor temperature, state
                                wsn (MQTT wireless): motor vibration RMS
      filler            F-301   opcua: state, speed, good/bad counters, bowl level
      capper            C-401   opcua: state, good/bad counters, head torque, motor current

Vibration limits follow ISO 10816-3 zone boundaries for medium machines on rigid foundations (pump: 2.8 mm/s
B/C, 4.5 mm/s C/D) and on flexible ones (conveyor drive: 4.5 / 7.1 mm/s).
"""

from __future__ import annotations

from plantguard.sim.signals import STATE_NAMES, SignalSpec

SITE, AREA, LINE = "site1", "packaging", "bottling-line-1"
LINE_PATH = f"{SITE}/{AREA}/{LINE}"
PUMP = f"{LINE_PATH}/filler-feed-pump"
PUMP_VIBRATION = f"{PUMP}/wsn/bearing-vibration"
PUMP_BEARING_TEMP = f"{PUMP}/wsn/bearing-temperature"
PUMP_PRESSURE = f"{PUMP}/plc/discharge-pressure"
PUMP_SENSOR = f"{PUMP}/wsn"
# the demo's deliberate bad actor: a limit set too close to the operating point (docs/maturity.md)
NUISANCE_POINT = f"{LINE_PATH}/capper/opcua/head-torque"
NUISANCE_ALARM = f"{NUISANCE_POINT}:HI"
VIB_HI, VIB_HIHI = 2.8, 4.5  # mm/s, ISO 10816-3 group 2 rigid: zone C and zone D boundaries
VIB_ON_DELAY_S = 120

_STATES = {k: v for k, v in STATE_NAMES.items()}
_BIG = 1e12  # counter range: never reached, but a range catches garbage


def _p(pid, name, unit, lo, hi, period, crit, spec: SignalSpec, alarms=None, data_type="float", states=None):
    d = {"id": pid, "name": name, "unit": unit, "data_type": data_type, "period": period, "criticality": crit}
    if lo is not None:
        d["range"] = {"low": lo, "high": hi}
    if alarms:
        d["alarms"] = alarms
    if states:
        d["states"] = dict(states)
    return d, spec


def _limits(priority="medium", stale=None, **kw):
    a = {"limits": {**kw, "priority": priority}}
    if stale:
        a["stale"] = {"periods": stale, "priority": "low"}
    return a


def _state(name):
    return _p("state", name, "", None, None, "1s", "medium", SignalSpec(kind="state", decimals=0), data_type="state",
              states=_STATES)


def _counter(pid, name, rate, crit="low"):
    return _p(pid, name, "bottles", 0, _BIG, "1s", crit, SignalSpec(kind="counter", rate=rate, decimals=0), data_type="int")


# levels: stopped, running, idle/starved, fault (temperatures at 25 degC ambient)
ASSETS = [
    {"id": "filler-feed-pump", "name": "Filler feed pump P-101", "kind": "pump", "devices": [
        {"id": "plc", "name": "Line PLC-1, pump I/O", "protocol": "modbus", "points": [
            _p("discharge-pressure", "Discharge pressure", "bar", 0, 10, "1s", "critical",
               SignalSpec(kind="pressure", levels=(0.3, 4.2, 4.6, 0.3), noise=0.04, tau_s=2.0),
               _limits("high", lo=2.0, lolo=1.0, deadband=0.2, on_delay="10s")),
            _p("flow", "Flow to filler bowl", "m3/h", 0, 30, "1s", "high",
               SignalSpec(kind="flow", levels=(0.0, 12.0, 3.5, 0.0), noise=0.15, tau_s=3.0, decimals=2)),
            _p("motor-current", "Motor current", "A", 0, 60, "1s", "high",
               SignalSpec(kind="current", levels=(0.0, 22.0, 16.0, 0.0), noise=0.25, tau_s=0.5, wear_gain=3.0, decimals=2),
               _limits("medium", hi=30, hihi=36, deadband=1, on_delay="30s")),
            _p("motor-temperature", "Motor winding temperature", "degC", -20, 180, "5s", "medium",
               SignalSpec(kind="temperature", levels=(25.0, 68.0, 62.0, 25.0), noise=0.2, tau_s=900, wear_gain=8.0,
                          ambient=True, decimals=2),
               _limits("medium", hi=110, hihi=130, deadband=2, on_delay="60s")),
            _p("running", "Pump running", "", None, None, "1s", "high", SignalSpec(kind="running", levels=(0, 1, 1, 0), decimals=0),
               data_type="bool"),
        ]},
        {"id": "wsn", "name": "Wireless vibration/temperature sensor VS-101", "protocol": "mqtt", "offline_after_periods": 6,
         "points": [
            _p("bearing-vibration", "Drive-end bearing vibration (velocity RMS)", "mm/s", 0, 50, "5s", "critical",
               SignalSpec(kind="vibration", levels=(0.1, 1.2, 1.05, 0.1), noise=0.02, noise_rel=0.04, wear_gain=10.0),
               _limits("high", stale=6, hi=VIB_HI, hihi=VIB_HIHI, deadband=0.2, on_delay=f"{VIB_ON_DELAY_S}s", off_delay="60s")),
            _p("bearing-temperature", "Drive-end bearing temperature", "degC", -20, 150, "5s", "high",
               SignalSpec(kind="temperature", levels=(25.0, 47.0, 44.0, 25.0), noise=0.15, tau_s=600, wear_gain=40.0,
                          ambient=True, decimals=2),
               _limits("high", stale=6, hi=80, hihi=95, deadband=2, on_delay="60s")),
         ]},
    ]},
    {"id": "conveyor", "name": "Infeed conveyor CV-201 (motor + belt)", "kind": "conveyor", "devices": [
        {"id": "plc", "name": "Line PLC-1, conveyor I/O", "protocol": "modbus", "points": [
            _p("motor-current", "Drive motor current", "A", 0, 20, "1s", "medium",
               SignalSpec(kind="current", levels=(0.0, 6.5, 5.2, 0.0), noise=0.08, tau_s=0.5, wear_gain=0.8, decimals=2),
               _limits("medium", hi=12, hihi=15, deadband=0.5, on_delay="30s")),
            _p("belt-speed", "Belt speed", "m/s", 0, 3, "1s", "medium",
               SignalSpec(kind="speed", levels=(0.0, 1.2, 1.2, 0.0), noise=0.004, tau_s=2.0)),
            _p("motor-temperature", "Drive motor temperature", "degC", -20, 180, "5s", "low",
               SignalSpec(kind="temperature", levels=(25.0, 58.0, 55.0, 25.0), noise=0.2, tau_s=1200, wear_gain=6.0,
                          ambient=True, decimals=2),
               _limits("medium", hi=100, hihi=120, deadband=2, on_delay="60s")),
            _state("Conveyor state"),
        ]},
        {"id": "wsn", "name": "Wireless vibration sensor VS-201", "protocol": "mqtt", "offline_after_periods": 6, "points": [
            _p("motor-vibration", "Drive motor vibration (velocity RMS)", "mm/s", 0, 50, "5s", "medium",
               SignalSpec(kind="vibration", levels=(0.1, 1.6, 1.5, 0.1), noise=0.02, noise_rel=0.05, wear_gain=6.0),
               _limits("medium", stale=6, hi=4.5, hihi=7.1, deadband=0.3, on_delay="2m", off_delay="60s")),
        ]},
    ]},
    {"id": "filler", "name": "Rotary filler F-301", "kind": "filler", "devices": [
        {"id": "opcua", "name": "Filler OPC UA server", "protocol": "opcua", "points": [
            _state("Filler state"),
            _p("speed", "Filling speed", "bottles/h", 0, 30000, "1s", "medium",
               SignalSpec(kind="speed", levels=(0.0, 21600.0, 0.0, 0.0), noise=40.0, tau_s=5.0, decimals=0)),
            _counter("good-count", "Bottles filled (good)", 5.9, "medium"),
            _counter("bad-count", "Bottles rejected (fill level)", 0.08),
            _p("bowl-level", "Product bowl level", "%", 0, 100, "1s", "high",
               SignalSpec(kind="level", levels=(55.0, 60.0, 68.0, 10.0), noise=0.4, tau_s=20.0, decimals=1),
               _limits("high", lo=25, lolo=15, deadband=2, on_delay="10s")),
        ]},
    ]},
    {"id": "capper", "name": "Capper C-401", "kind": "capper", "devices": [
        {"id": "opcua", "name": "Capper OPC UA server", "protocol": "opcua", "points": [
            _state("Capper state"),
            _counter("good-count", "Bottles capped (good)", 5.85, "medium"),
            _counter("bad-count", "Bottles rejected (cap torque)", 0.05),
            # a limit set too close to the operating point, no deadband: the kind of alarm every plant has and the
            # alarm-performance report lists as a bad actor (frequent, fleeting, chattering)
            _p("head-torque", "Mean capping torque", "N.m", 0, 5, "1s", "medium",
               SignalSpec(kind="torque", levels=(0.0, 2.1, 0.0, 0.0), noise=0.04, tau_s=0.0, decimals=2),
               _limits("low", hi=2.2, deadband=0)),
            _p("motor-current", "Turret motor current", "A", 0, 15, "1s", "low",
               SignalSpec(kind="current", levels=(0.0, 4.2, 2.0, 0.0), noise=0.06, tau_s=0.5, decimals=2)),
        ]},
    ]},
]


VIB_FAILURE = 11.2  # mm/s: the bearing's vibration at functional failure (the pump trips); ISO 10816 zone D
RUL_LEAD_TIME = "4h"  # time the maintenance crew needs to plan a bearing change

# Analytics of the demo line (see docs/analytics/): SPC with spec limits on the quality characteristics, robust
# anomaly detection on the bearing sensor, one multivariate detector over the pump's sensors, and the pump
# bearing's remaining useful life with a predictive alert.
POINT_ANALYTICS = {
    # SPC charts and records rule violations only while the machine runs (only_when): a torque of 0 while the line
    # is idle is not a process shift, and must neither count as a violation nor pull the capability down. No SPC
    # alarm: the demo's story is the bearing.
    "filler-feed-pump/plc/discharge-pressure": {"spc": {"baseline": 300, "alarm": False}},  # the pump reports no state
    "filler-feed-pump/wsn/bearing-vibration": {"anomaly": {"priority": "medium"}},  # the default wiring
    "filler/opcua/bowl-level": {"spc": {"baseline": 300, "lsl": 50, "usl": 70, "alarm": False}, "only_when": ["running"]},
    "capper/opcua/head-torque": {"spc": {"baseline": 300, "lsl": 1.8, "usl": 2.4, "alarm": False}, "only_when": ["running"]},
}
ASSET_ANALYTICS = {
    "filler-feed-pump": {
        "anomaly": {"points": ["plc/discharge-pressure", "plc/flow", "plc/motor-current", "wsn/bearing-vibration",
                               "wsn/bearing-temperature"],
                    "params": {"warmup": 360}, "priority": "medium"},
        "rul": {"point": "wsn/bearing-vibration", "failure_threshold": VIB_FAILURE, "lead_time": RUL_LEAD_TIME,
                "priority": "high"},
    },
}
LINE_OEE = {
    "counting_asset": "capper",  # finished bottles leave the line at the capper
    "ideal_rate_per_h": 21600,  # rated speed of the filler, the bottleneck
    "state_categories": {0: "planned_stop", 1: "running", 2: "idle", 3: "unplanned_stop"},
}
SHIFTS = [{"name": "morning", "start": "06:00", "end": "14:00"}, {"name": "afternoon", "start": "14:00", "end": "22:00"},
          {"name": "night", "start": "22:00", "end": "06:00"}]


def _assets_config() -> list[dict]:
    out = []
    for a in ASSETS:
        devices = []
        for d in a["devices"]:
            points = []
            for p, _ in d["points"]:
                an = POINT_ANALYTICS.get(f"{a['id']}/{d['id']}/{p['id']}")
                points.append({**p, "analytics": an} if an else p)
            devices.append({**{k: v for k, v in d.items() if k != "points"}, "points": points})
        asset = {**{k: v for k, v in a.items() if k != "devices"}, "devices": devices}
        if a["id"] in ASSET_ANALYTICS:
            asset["analytics"] = ASSET_ANALYTICS[a["id"]]
        out.append(asset)
    return out


def demo_signals() -> dict[str, SignalSpec]:
    """Spec per 'asset/device/point' of the demo line."""
    return {f"{a['id']}/{d['id']}/{p['id']}": spec for a in ASSETS for d in a["devices"] for p, spec in d["points"]}


# The continuity plan of the demo line: what "line 1 output" and the order fulfilment behind it depend on, their
# business impact analysis, and the playbook for a predicted bearing failure (docs/continuity.md).
def demo_continuity(smtp_port: int | None = None) -> dict:
    section = {
        "services": [
            {"id": "line1-output", "name": "Line 1 output", "depends_on": ["bottling"], "mtpd": "12h", "rto": "2h",
             "rpo": "15m", "mbco": 0.8, "cost_per_hour": 9000, "priority": 1},
            {"id": "order-fulfilment", "name": "Customer order fulfilment", "depends_on": ["line1-output"], "mtpd": "48h",
             "rto": "24h", "rpo": "1h", "mbco": 0.6, "cost_per_hour": 25000, "priority": 1,
             "workaround": {"description": "ship from finished-goods stock", "capacity": 0.7, "limit": "24h"}},
            {"id": "condition-monitoring", "name": "Condition monitoring", "depends_on": ["pump-sensor", "conveyor-sensor", "platform"],
             "mtpd": "72h", "rto": "8h", "rpo": "1h", "mbco": 0.5, "cost_per_hour": 200, "priority": 3},
        ],
        "nodes": [
            {"id": "bottling", "kind": "process", "name": "Bottling", "depends_on": ["feed", "conveyor", f"{LINE_PATH}/filler", f"{LINE_PATH}/capper"]},
            {"id": "feed", "kind": "process", "name": "Filler feed", "depends_on": ["pump"]},
            {"id": "pump", "kind": "asset", "ref": PUMP, "depends_on": ["pump-io"], "recovery": "3h",
             "name": "Filler feed pump P-101 (swap to the standby pump: 3 h)"},
            {"id": "pump-io", "kind": "device", "ref": f"{PUMP}/plc", "depends_on": ["cell-network", "power"], "recovery": "1h"},
            {"id": "conveyor", "kind": "asset", "ref": f"{LINE_PATH}/conveyor", "depends_on": ["conveyor-io"], "recovery": "4h"},
            {"id": "conveyor-io", "kind": "device", "ref": f"{LINE_PATH}/conveyor/plc", "depends_on": ["cell-network", "power"], "recovery": "1h"},
            {"id": "pump-sensor", "kind": "device", "ref": PUMP_SENSOR, "depends_on": ["wsn-gateway"], "recovery": "30m"},
            {"id": "conveyor-sensor", "kind": "device", "ref": f"{LINE_PATH}/conveyor/wsn", "depends_on": ["wsn-gateway"], "recovery": "30m"},
            {"id": "wsn-gateway", "kind": "gateway", "name": "Wireless sensor gateway", "depends_on": ["cell-network"],
             "buffer": "4h", "recovery": "1h"},
            {"id": "cell-network", "kind": "network", "name": "Cell network (line 1)", "depends_on": ["power"], "recovery": "2h"},
            {"id": "power", "kind": "power", "name": "Line 1 power", "recovery": "1h"},
            {"id": "platform", "kind": "platform", "name": "plantguard", "depends_on": ["database"], "buffer": "24h", "recovery": "15m"},
            {"id": "database", "kind": "database", "backup_every": "1h", "recovery": "30m"},
        ],
        "playbooks": [{
            "id": "bearing-failure-predicted", "name": "Pump bearing failure predicted", "on": ["predictive"],
            "nodes": ["pump"], "auto_start": True, "steps": [
                {"id": "notify-maintenance", "type": "notify", "approval": {"role": "engineer", "ttl": "8h", "on_expiry": "fail"},
                 "params": {"email": "maintenance@plant.local", "subject": "plantguard: {title}",
                            "message": "{title}. Incident {incident}: plan the swap to the standby pump."}},
                {"id": "open-work-order", "type": "work_order",
                 "params": {"title": "Inspect P-101 drive-end bearing (incident {incident})", "asset": PUMP, "priority": "high"}},
                {"id": "schedule-swap", "type": "work_order",
                 "params": {"title": "Swap P-101 to the standby pump before the predicted failure", "asset": PUMP, "due_in": "before failure"}},
            ]}],
    }
    if smtp_port:
        section["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "sender": "plantguard-demo@localhost"}
    return section


def demo_maturity() -> dict:
    """Operator positions, target profile, skills matrix and a phased rollout: the filler's and the capper's OPC UA
    servers join in two phases, each judged against the established PLCs before it goes live."""
    plcs = [f"{PUMP}/plc", f"{LINE_PATH}/conveyor/plc"]
    gate = {"bucket": "1m", "kpis": [{"kpi": "completeness", "critical": True, "tolerance": 0.02}]}
    return {
        "positions": [{"name": "Line 1 console", "scope": [LINE_PATH]}],
        "targets": [{"site": "*", "levels": {a: 3 for a in ("data", "quality", "predictive", "cyber", "continuity", "people",
                                                          "integration", "improvement")}}],
        "training": {
            "roles": [{"name": "operator", "skills": [{"name": "alarm response", "valid_for": "365d"},
                                                      {"name": "line 1 start-up", "valid_for": "730d"}]},
                      {"name": "maintenance technician", "skills": [{"name": "vibration analysis", "valid_for": "730d"},
                                                                    {"name": "lockout-tagout", "valid_for": "365d"}]}],
            "people": [{"name": "Ann Operator", "role": "operator"}, {"name": "Omar Operator", "role": "operator"},
                       {"name": "Tess Technician", "role": "maintenance technician"}]},
        "rollouts": [{"name": "opc-ua-integration", "description": "The filler and capper OPC UA servers join line 1 in phases",
                      "phases": [
                          {"name": "pilot", "scope": {"devices": [f"{LINE_PATH}/filler/opcua"]}, "baseline": {"devices": plcs},
                           "gate": gate, "approval": "engineer"},
                          {"name": "expand", "scope": {"devices": [f"{LINE_PATH}/capper/opcua"]}, "baseline": {"devices": plcs},
                           "gate": gate, "approval": "admin"}]}],
    }


def demo_config(data_dir: str = "./data/demo", *, mqtt_host: str | None = None, mqtt_port: int = 1883,
                topic_prefix: str = "plantguard/v1", api_host: str = "127.0.0.1", api_port: int = 8000) -> dict:
    """The demo plant as a config dict for parse_config: the bottling line, an embedded store in `data_dir`, and
    the MQTT subscriber enabled when `mqtt_host` is given."""
    cfg = {
        "version": 1,
        "sites": [{"id": SITE, "name": "Demo bottling plant", "timezone": "UTC", "shifts": SHIFTS, "areas": [
            {"id": AREA, "name": "Packaging hall", "lines": [
                {"id": LINE, "name": "Bottling line 1", "assets": _assets_config(), "oee": LINE_OEE}]}]}],
        "storage": {"backend": "embedded", "data_dir": str(data_dir)},
        "api": {"host": api_host, "port": api_port},
        "continuity": demo_continuity(),
        "maturity": demo_maturity(),
    }
    if mqtt_host:
        cfg["mqtt"] = {"enabled": True, "host": mqtt_host, "port": mqtt_port, "topic_prefix": topic_prefix,
                       "client_id": "plantguard-demo-ingest"}
    return cfg


def pump_vibration_level(wear: float, state_level: float = 1.2) -> float:
    """Mean pump bearing vibration (mm/s) at a given wear while running."""
    return state_level + demo_signals()["filler-feed-pump/wsn/bearing-vibration"].wear_gain * wear
