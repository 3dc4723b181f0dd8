"""`plantguard demo`: the bottling line, a Platform with the HTTP API, and a live terminal summary.

Timeline (defaults: history 6 h, time to failure 8 h): the pump bearing starts wearing 5 h before the demo
starts, its vibration passes the ISO zone C boundary (HI, 2.8 mm/s) about 30 minutes before it, so the HI alarm
is raised while the history is being backfilled; HIHI (4.5 mm/s) follows 50 minutes into the live run and
the pump trips 3 h in, stopping the line. The bearing's remaining-useful-life model raises its predictive
maintenance alert (lower bound of the remaining life below the 4 h lead time) during the backfill, hours before
the HI alarm and the trip.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from plantguard.config import parse_config
from plantguard.errors import Conflict
from plantguard.runtime import Platform
from plantguard.sim.faults import BearingWear
from plantguard.sim.plant import (LINE_PATH, PUMP, PUMP_BEARING_TEMP, PUMP_PRESSURE, PUMP_VIBRATION, VIB_HI, VIB_HIHI,
                                  demo_config, demo_signals)
from plantguard.sim.runner import MqttSink, PipelineSink, Simulator
from plantguard.timeutil import US, iso, now_us

log = logging.getLogger(__name__)

MARKER = "plantguard-demo.json"  # marks a data directory the demo created, and may therefore reset
CONFIG_FILE = "plantguard-demo.yaml"  # the demo's configuration, written for `plantguard assess --config`
STORE_FILES = ("plantguard.duckdb", "plantguard.duckdb.wal")
HI_LEAD_S = 30 * 60  # the mean vibration crosses HI this long before the history catches up with the clock


@dataclass(frozen=True)
class Timeline:
    onset_us: int
    hi_us: int  # mean vibration reaches HI
    hihi_us: int
    failure_us: int

    def lines(self, now: int) -> list[str]:
        def rel(t):
            d = (t - now) / US
            sign = "in " if d >= 0 else ""
            d = abs(d)
            text = f"{int(d // 3600)} h {int(d % 3600 // 60):02d} min" if d >= 3600 else f"{int(d // 60)} min"
            return f"{sign}{text}{' ago' if sign == '' else ''}"

        return [f"bearing wear begins      {iso(self.onset_us)}  ({rel(self.onset_us)})",
                f"vibration reaches HI     {iso(self.hi_us)}  ({rel(self.hi_us)}, {VIB_HI} mm/s, alarm after the on-delay)",
                f"vibration reaches HIHI   {iso(self.hihi_us)}  ({rel(self.hihi_us)}, {VIB_HIHI} mm/s)",
                f"pump trips, line stops   {iso(self.failure_us)}  ({rel(self.failure_us)})"]


def demo_fault(now: int, time_to_failure_h: float = 8.0, hi_lead_s: float = HI_LEAD_S) -> tuple[BearingWear, Timeline]:
    """The pump bearing fault, placed so that the mean vibration crosses HI `hi_lead_s` before `now`."""
    gain = demo_signals()["filler-feed-pump/wsn/bearing-vibration"]
    base = gain.levels[1]
    probe = BearingWear(asset=PUMP, start_us=0, time_to_failure_s=time_to_failure_h * 3600)
    to_hi = probe.seconds_to_wear((VIB_HI - base) / gain.wear_gain)
    to_hihi = probe.seconds_to_wear((VIB_HIHI - base) / gain.wear_gain)
    onset = now - int((to_hi + hi_lead_s) * US)
    f = BearingWear(asset=PUMP, start_us=onset, time_to_failure_s=time_to_failure_h * 3600)
    return f, Timeline(onset, onset + int(to_hi * US), onset + int(to_hihi * US), f.failure_us)


class DemoClock:
    """The platform's clock: while the history is backfilled, the newest durably written reading (so stale-data
    and device-offline checks judge the replayed data as of then, not hours later); the wall clock from the
    moment the written data has caught up with it."""

    def __init__(self, start_us: int) -> None:
        self.start_us = start_us
        self.sim: Simulator | None = None
        self.pipeline = None
        self.live = False

    def __call__(self) -> int:
        wall = now_us()
        if self.live:
            return wall
        written = self.start_us
        if self.pipeline is not None:
            ts = self.pipeline.latest.ts
            if len(ts):
                written = max(written, int(ts.max()))
        if self.sim is not None and self.sim.caught_up_wall_us is not None and written >= wall - 5 * US:
            self.live = True
            return wall
        return min(wall, written)


class _Throttle:
    """A sink after the MQTT sink: during the backfill, waits until the platform has written what was published
    (less `max_ahead_us`), so the broker and the subscriber never hold more than a few minutes of history."""

    def __init__(self, clock: DemoClock, sim: Simulator, max_ahead_us: int = 120 * US, timeout_s: float = 30.0) -> None:
        self.clock, self.sim, self.max_ahead_us, self.timeout_s = clock, sim, max_ahead_us, timeout_s

    def send(self, batch, live: bool) -> None:
        if live:
            return
        deadline = time.monotonic() + self.timeout_s
        while self.clock() < self.sim.time_us - self.max_ahead_us and time.monotonic() < deadline:
            time.sleep(0.005)


def prepare_data_dir(data_dir: str | Path, seed: int) -> None:
    """Every demo starts from an empty store. A directory holding a store the demo did not create is refused."""
    from plantguard.fsperm import secure_data_dir

    d = Path(data_dir)
    secure_data_dir(d)  # owner-only before the demo writes its files into it
    marker = d / MARKER
    has_store = any((d / f).exists() for f in STORE_FILES)
    if has_store and not marker.exists():
        raise Conflict(f"{d} holds a plantguard store the demo did not create; give the demo an empty directory")
    removed = [f for f in STORE_FILES if (d / f).exists()]
    for f in removed:
        (d / f).unlink()
    if removed:
        # the audit log's witness and the tour token belong to the store that goes: a new store, a new log
        for f in ("audit/witness.jsonl", "api-token"):
            if (d / f).exists():
                (d / f).unlink()
    if removed:
        # Say it: an operator who came back to look at yesterday's demo must not lose it without a word.
        print(f"demo: the previous demo store in {d} was emptied (every demo starts from a clean store; "
              "give --data-dir another directory to keep it)", file=sys.stderr, flush=True)
    marker.write_text(json.dumps({"created_by": "plantguard demo", "seed": seed}) + "\n", encoding="utf-8")


def _serve(platform: Platform, host: str, port: int):
    """Starts the HTTP API on a background thread; returns (server, thread), or None without the API module."""
    if find_spec("plantguard.api.app") is None:
        return None
    import uvicorn

    from plantguard.api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(platform.services), host=host, port=port, log_level="warning",
                                           access_log=False))
    th = threading.Thread(target=server.run, name="plantguard-http", daemon=True)
    th.start()
    deadline = time.monotonic() + 15
    while not server.started and th.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        th.join(5)
        raise Conflict(f"the HTTP server could not listen on {host}:{port} (port in use?); pass another port")
    return server, th


def _login_link(platform: Platform) -> str:
    """The demo's admin (created on the first start with a password nobody is shown: the link is the way in,
    and PLANTGUARD_ADMIN_PASSWORD sets a password instead) and a one-time login link for it."""
    import os

    platform.services.accounts.ensure_admin(os.environ.get("PLANTGUARD_ADMIN_PASSWORD"))
    admin = next(u.name for u in platform.services.accounts.users() if u.role.value == "admin" and not u.disabled)
    return platform.services.accounts.login_link(admin)


def _tour_token(platform: Platform, data_dir: Path) -> Path:
    """A one-day token for the README's curl tour, written to <data_dir>/api-token (readable by its owner only):
    `curl -H "Authorization: Bearer $(cat data/demo/api-token)" ...`."""
    import os

    from plantguard.domain.actor import Actor

    admin = next(u.name for u in platform.services.accounts.users() if u.role.value == "admin" and not u.disabled)
    secret, _ = platform.services.accounts.create_token(admin, "demo-tour", scopes=["read", "ingest", "alarms.operate", "security.read",
                                                                                                  "maturity.assess", "improvement.edit"], days=1,
                                               actor=Actor.system("demo"))
    path = data_dir / "api-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return path


def _start_platform(cfg, clock: "DemoClock", alarms_on: bool) -> Platform:
    platform = Platform(cfg, clock=clock, alarms=alarms_on).start()
    clock.pipeline = platform.pipeline
    seed_maturity(platform)
    return platform


def seed_maturity(platform: Platform) -> None:
    """The demo's maturity records: the OPC UA rollout's pilot started as the history begins (the filler's server
    in shadow mode from then on), and training records, one of them expired and one skill never trained."""
    from plantguard.domain.actor import Actor
    from plantguard.errors import Conflict

    m = platform.services.maturity
    if m is None:
        return
    who = Actor.system("demo")
    try:
        m.start_rollout("opc-ua-integration", who)
    except Conflict:
        pass
    now, day = platform.clock(), 86400 * US
    if not m.training_records():
        for person, skill, ago in (("Ann Operator", "alarm response", 100), ("Ann Operator", "line 1 start-up", 200),
                                   ("Omar Operator", "alarm response", 400), ("Omar Operator", "line 1 start-up", 30),
                                   ("Tess Technician", "vibration analysis", 60)):
            m.record_training(person, skill, who, completed_at=now - ago * day)


def _short(tag: str) -> str:
    return tag[len(LINE_PATH) + 1:] if tag.startswith(LINE_PATH + "/") else tag


class _Status:
    """What the terminal shows, read from the platform once a second."""

    def __init__(self, platform: Platform, sim: Simulator, history_end_us: int) -> None:
        self.platform, self.sim, self.history_end_us = platform, sim, history_end_us
        self._last = (time.monotonic(), 0)
        self.rate = 0.0

    def sample(self) -> dict:
        st = self.platform.pipeline.stats
        t, n = time.monotonic(), st.accepted
        t0, n0 = self._last
        if t - t0 >= 0.5:
            self.rate = (n - n0) / (t - t0)
            self._last = (t, n)
        alarms = self.platform.services.alarms.list(active=True) if self.platform.services.alarms.enabled else None
        latest = self.platform.services.telemetry.latest([PUMP_VIBRATION, PUMP_BEARING_TEMP, PUMP_PRESSURE])
        sim = self.sim
        if sim.caught_up_wall_us is not None:
            phase = "live (real time)"
        else:
            span = max(1, self.history_end_us - sim.start_us)
            phase = f"backfilling history {min(100.0, max(0.0, 100.0 * (sim.time_us - sim.start_us) / span)):.0f}%"
        live = self.platform.services.analytics.live()
        rul = (live["assets"].get(PUMP) or {}).get("rul")
        oee = self._oee(max(sim.time_us, sim.start_us))
        return {"sim_time": iso(max(sim.time_us, sim.start_us)), "phase": phase, "generated": sim.readings,
                "rate": self.rate, "accepted": st.accepted, "rejected": st.rejected, "duplicates": st.duplicates,
                "queued": st.queued_readings, "alarms": alarms, "latest": latest, "rul": rul, "oee": oee,
                "anomaly": (live["assets"].get(PUMP) or {}).get("anomaly")}

    def _oee(self, t_us: int) -> dict | None:
        """The line's OEE over the last hour of simulated time, refreshed every 15 s (it reads raw history)."""
        now = time.monotonic()
        if now - getattr(self, "_oee_at", -1e9) < 15:
            return getattr(self, "_oee_val", None)
        self._oee_at = now
        try:
            self._oee_val = self.platform.services.performance.oee(LINE_PATH, t_us - 3600 * US, t_us, "total")["total"]
        except Exception:  # noqa: BLE001 - a status line must never stop the demo
            self._oee_val = None
        return self._oee_val

    def plain(self) -> str:
        s = self.sample()
        v = s["latest"][PUMP_VIBRATION]
        al = s["alarms"]
        alarm_text = "alarms off" if al is None else (f"{len(al)} active" + (": " + ", ".join(
            f"{a.condition} {_short(a.tag)}" for a in al[:3]) if al else ""))
        return (f"[{s['sim_time']}] {s['phase']} | {s['rate']:.0f} readings/s | accepted {s['accepted']} rejected "
                f"{s['rejected']} duplicates {s['duplicates']} queue {s['queued']} | pump vibration "
                f"{'-' if v is None else format(v['value'], '.2f')} mm/s | bearing {rul_text(s['rul'])} | {alarm_text}")

    def rich(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        s = self.sample()
        head = Table.grid(padding=(0, 2))
        head.add_row("simulated time", s["sim_time"], "phase", s["phase"])
        head.add_row("readings/s", f"{s['rate']:.0f}", "generated", f"{s['generated']:,}")
        head.add_row("accepted", f"{s['accepted']:,}", "rejected / duplicates", f"{s['rejected']:,} / {s['duplicates']:,}")
        head.add_row("ingest queue", f"{s['queued']:,}", "", "")
        sig = Table(title="Filler feed pump P-101", title_justify="left", expand=False)
        for c in ("signal", "value", "limits"):
            sig.add_column(c)
        for tag, name, unit, lim in ((PUMP_VIBRATION, "bearing vibration", "mm/s", f"HI {VIB_HI}  HIHI {VIB_HIHI} (ISO 10816-3)"),
                                     (PUMP_BEARING_TEMP, "bearing temperature", "degC", "HI 80  HIHI 95"),
                                     (PUMP_PRESSURE, "discharge pressure", "bar", "LO 2.0  LOLO 1.0")):
            v = s["latest"][tag]
            sig.add_row(name, "-" if v is None else f"{v['value']:.2f} {unit}", lim)
        pm = Table(title="Predictive maintenance and line performance", title_justify="left")
        for c in ("figure", "value"):
            pm.add_column(c)
        pm.add_row("P-101 bearing remaining life", rul_text(s["rul"]))
        an = s["anomaly"]
        pm.add_row("P-101 multivariate anomaly", "-" if an is None else ("warming up" if not an["warm"] else
                                                                          "ANOMALOUS" if an["anomalous"] else "normal"))
        o = s["oee"]
        pm.add_row("Line OEE, last hour", "-" if not o or o.get("oee") is None else
                   f"{100 * o['oee']:.1f} %  (A {100 * o['availability']:.0f} %  P {100 * o['performance']:.0f} %  Q {100 * o['quality']:.1f} %)")
        parts = [head, sig, pm]
        if s["alarms"] is None:
            parts.append(Text("alarm engine not available: alarms are off"))
        else:
            al = Table(title=f"Active alarms ({len(s['alarms'])})", title_justify="left")
            for c in ("priority", "condition", "tag", "value", "raised (UTC)", "state"):
                al.add_column(c, no_wrap=c != "tag", overflow="fold")
            style = {"urgent": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
            for a in s["alarms"][:10]:
                al.add_row(Text(a.priority, style=style.get(a.priority, "")), a.condition, _short(a.tag),
                           "" if a.value is None else f"{a.value:g}", iso(a.raised_at)[5:19].replace("T", " ") if a.raised_at else "", a.state)
            parts.append(al)
        parts.append(Text("Ctrl-C stops the demo", style="dim"))
        return Group(*parts)


class _Route:
    """Sends the backfill of every device, and the live readings of the devices no field server holds (the
    wireless sensors), to the inner sink; live values of the PLC and the OPC UA controllers reach the platform
    through its connectors instead."""

    def __init__(self, inner, field, *, live: bool = True, backfill: bool = True) -> None:
        self.inner, self.field = inner, field
        self.live, self.backfill = live, backfill

    def send(self, batch, live: bool) -> None:
        if (live and not self.live) or (not live and not self.backfill):
            return
        if live and self.field is not None:
            from plantguard.sim.field import split_live

            batch = split_live(batch, self.field)
        if len(batch):
            self.inner.send(batch, live)

    def flush(self, *a, **kw) -> None:
        fl = getattr(self.inner, "flush", None)
        if fl is not None:
            fl(*a, **kw)

    def close(self) -> None:
        c = getattr(self.inner, "close", None)
        if c is not None:
            c()


def _private_broker(data_dir: Path):
    """A Mosquitto of the demo's own on a free loopback port, when the mosquitto binary is installed; else None."""
    try:
        from plantguard.testing.mosquitto import MosquittoBroker, MosquittoUnavailable, find_mosquitto

        find_mosquitto(install=False)
    except Exception:  # noqa: BLE001 - no broker: the wireless sensors feed the pipeline in-process
        return None
    try:
        return MosquittoBroker(workdir=None).start()
    except (MosquittoUnavailable, OSError, RuntimeError) as e:
        log.warning("could not start a private MQTT broker (%s); the wireless sensors feed the pipeline in-process", e)
        return None


def _mailbox(directory: Path, cfg_dict: dict):
    """A local SMTP server (aiosmtpd) on a free loopback port that writes each message to `directory` as .eml,
    set as the continuity section's mail server; None when aiosmtpd is not installed (the playbook's e-mail step
    then fails, recorded)."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        return None
    from plantguard.sim.plant import demo_continuity

    import socket

    directory.mkdir(parents=True, exist_ok=True)

    class Box:
        async def handle_DATA(self, server, session, envelope):
            name = directory / f"{time.time_ns()}.eml"
            name.write_bytes(envelope.original_content or envelope.content)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    ctl = Controller(Box(), hostname="127.0.0.1", port=free)
    ctl.start()
    cfg_dict["continuity"] = demo_continuity(smtp_port=free)
    return ctl


def write_demo_config(cfg_dict: dict, data_dir: str | Path) -> Path:
    """The demo's configuration, connectors included, where `plantguard assess --config` can read it."""
    import yaml

    path = Path(data_dir) / CONFIG_FILE
    path.write_text("# Written by `plantguard demo`: the simulated line, its field devices on loopback ports and its store.\n"
                    "# Valid while the demo runs (the ports change with every run).\n"
                    + yaml.safe_dump(cfg_dict, sort_keys=False), encoding="utf-8")
    return path


def run_demo(duration: float | None = None, speed: float = 1.0, history: float = 6.0, host: str = "127.0.0.1",
             port: int = 8000, data_dir: str = "./data/demo", seed: int = 42, mqtt_host: str | None = None,
             mqtt_port: int = 1883, *, time_to_failure: float = 8.0, console=None, field_devices: bool = False,
             private_broker: bool = False) -> dict:
    """Runs the demo until Ctrl-C or for `duration` wall seconds; returns a summary.

    history: hours of past data generated before going live. speed: pace of that backfill in simulated seconds per
    wall second; 1 or less backfills as fast as the pipeline takes it (the live part is always real time, since
    no reading may lie in the future). time_to_failure: hours from bearing-wear onset to the pump trip.
    """
    from rich.console import Console

    console = console or Console()
    interactive = console.is_terminal and sys.stdout.isatty()
    say = console.print if interactive else (lambda *a, **k: print(*a, flush=True))

    now = now_us()
    prepare_data_dir(data_dir, seed)
    broker = field = None
    if mqtt_host is None and private_broker:
        broker = _private_broker(Path(data_dir))
        if broker is not None:
            mqtt_host, mqtt_port = broker.host, broker.port
    cfg_dict = demo_config(str(data_dir), mqtt_host=mqtt_host, mqtt_port=mqtt_port, api_host=host, api_port=port)
    mailbox = _mailbox(Path(data_dir) / "mail", cfg_dict)
    connector_cfgs: list = []
    if field_devices:
        from plantguard.sim.field import FieldDevices

        field = FieldDevices(parse_config(cfg_dict), host="127.0.0.1").start()
        connector_cfgs = field.connector_configs()
        cfg_dict["connectors"] = connector_cfgs
    config_path = write_demo_config(cfg_dict, data_dir)
    # The connectors start once the backfill has caught up with the clock: a poll during the backfill would stamp
    # a value of now among readings hours old.
    cfg = parse_config({**cfg_dict, "connectors": [{**c, "enabled": False} for c in connector_cfgs]})
    start_us = now - int(history * 3600 * US)
    clock = DemoClock(start_us)
    alarms_on = find_spec("plantguard.alarms.engine") is not None
    platform = _start_platform(cfg, clock, alarms_on)
    sim = sink = served = None
    wall0 = time.monotonic()
    try:
        fault, timeline = demo_fault(now, time_to_failure)
        # In-process, a chunk is written atomically: two simulated minutes per batch keep the platform clock close
        # behind. Over MQTT each device's share of a chunk is its own message, so devices can be a chunk apart
        # while they are written: 10 s keeps that under the shortest stale window (6 periods of 5 s).
        sim = Simulator(cfg, seed=seed, start_us=start_us, speed=math.inf if speed <= 1 else speed, clock=now_us,
                        chunk_ticks=10 if mqtt_host and field is None else 120)
        sim.inject(fault)
        clock.sim = sim
        sink = _wire_sinks(sim, platform, cfg, clock, field, mqtt_host, mqtt_port)
        if field is not None:
            sim.add_sink(field)
        # the admin, its login link and the tour's token exist before the server answers: a login in the first
        # milliseconds must not meet a server without its admin (a test on a busy machine did)
        link = _login_link(platform)
        tour_token = _tour_token(platform, Path(data_dir))
        served = _serve(platform, host, port)

        _announce(say, sim, seed, data_dir, field, broker, mqtt_host, mqtt_port, config_path, served, host, port, link,
                  tour_token, alarms_on, history, speed, timeline, now)
        sim.start()
        status = _Status(platform, sim, now)
        _run_live(say, console, interactive, status, platform, sim, clock, connector_cfgs,
                  None if duration is None else wall0 + duration)
        if sim.error is not None:
            say(f"the simulator stopped on an error: {sim.error}")
    finally:
        _shutdown(sim, sink, served, platform, field, broker, mailbox)

    summary = _summary(cfg, sim, timeline, alarms_on, time.monotonic() - wall0)
    say(f"demo stopped: {summary['readings']:,} readings generated, {summary['accepted']:,} stored, "
        f"{summary['alarms_raised']} alarms raised")
    if summary["predictive_alert"]:
        pa = summary["predictive_alert"]
        say(f"predictive maintenance alert for the pump bearing at {pa['at']}, {pa['hours_before_failure']:.1f} h before "
            f"the simulated failure: {pa['message']}")
    return summary


def _shutdown(sim, sink, served, platform, field, broker, mailbox=None) -> None:
    """In order: the simulator, its sink, the web server, the platform (sources, drain, store), the field devices, the
    broker, the mailbox."""
    if sim is not None:
        sim.stop()
    if sink is not None and hasattr(sink, "close"):
        try:
            sink.close()
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.exception("sink failed to close")
    if served is not None:
        server, th = served
        server.should_exit = True
        th.join(10)
    if sim is not None and isinstance(sink, MqttSink):
        time.sleep(0.5)  # let the subscriber hand the last messages to the pipeline before it stops
    platform.stop()
    if field is not None:
        field.stop()
    if broker is not None:
        broker.stop()
    if mailbox is not None:
        mailbox.stop()


def _wire_sinks(sim, platform, cfg, clock, field, mqtt_host, mqtt_port):
    """Where the simulated readings go: in-process, over MQTT, or both (history in-process, live over MQTT)."""
    if mqtt_host and field is not None:
        # the history is backfilled in-process (as a historian import would be); live, the wireless sensors publish
        sink = MqttSink(mqtt_host, mqtt_port, topic_prefix=cfg.section("mqtt").topic_prefix, client_id=f"plantguard-demo-sim-{os.getpid()}")
        sink.start()
        sim.add_sink(_Route(PipelineSink(platform.pipeline, max_in_flight=1), field, live=False))
        sim.add_sink(_Route(sink, field, backfill=False))
    elif mqtt_host:
        sink = MqttSink(mqtt_host, mqtt_port, topic_prefix=cfg.section("mqtt").topic_prefix, client_id=f"plantguard-demo-sim-{os.getpid()}")
        sink.start()
        sim.add_sink(_Route(sink, field))
        sim.add_sink(_Throttle(clock, sim))
    else:
        sink = PipelineSink(platform.pipeline, max_in_flight=1)
        sim.add_sink(_Route(sink, field))
    return sink


def _announce(say, sim, seed, data_dir, field, broker, mqtt_host, mqtt_port, config_path, served, host, port, link,
              tour_token, alarms_on, history, speed, timeline, now) -> None:
    """What the demo runs and where: the devices, the store, the login link, the token, the fault's timeline."""
    say(f"plantguard demo: bottling line 1, {len(sim.model.tags)} points on {len(sim.model.devices)} devices, seed {seed}")
    say(f"  data: {Path(data_dir).resolve()} (embedded store)")
    if field is not None:
        say(f"  PLC: Modbus TCP server on 127.0.0.1:{field.modbus_port}, read by the Modbus connector")
        say(f"  filler and capper: OPC UA server at {field.endpoint}, subscribed by the OPC UA connector")
    wsn = f"MQTT via {'a private Mosquitto on ' if broker else ''}{mqtt_host}:{mqtt_port}" if mqtt_host else \
        "in-process (no MQTT broker: install mosquitto or give --mqtt-host to publish them over MQTT)"
    say(f"  {'wireless sensors' if field is not None else 'all devices'}: {wsn}")
    say(f"  configuration: {config_path.resolve()}"
        + (f"  (try: .venv/bin/plantguard assess --config {config_path})" if field is not None else ""))
    if served is None:
        say("  the HTTP API module (plantguard.api.app) is not available: running without the web server")
    else:
        base = f"http://{host}:{port}"
        say(f"  log in (one click, valid once for 24 h): {base}/login?link={link}")
        say(f"  API token for curl (read, ingest, alarms, security findings; 1 day): {tour_token}")
        say(f"  dashboard {base}/   API docs {base}/docs   alarms {base}/api/alarms   metrics {base}/metrics")
        say(f"  continuity (business services, incidents, playbooks): {base}/continuity; e-mails land in {Path(data_dir).resolve() / 'mail'}")
    if not alarms_on:
        say("  the alarm engine (plantguard.alarms.engine) is not available: alarms are off")
    say(f"  history: {history:g} h backfilled {'as fast as possible' if speed <= 1 else f'at {speed:g}x'}, then live")
    for line in timeline.lines(now):
        say("  " + line)



def _run_live(say, console, interactive, status, platform, sim, clock, connector_cfgs, end) -> None:
    """Until Ctrl-C, the end of `duration` or the simulator's end: the status (live on a terminal, a line every 5 s
    otherwise), and the connectors started once the simulation runs live."""
    connectors_started = False
    try:
        if interactive:
            from rich.live import Live

            with Live(status.rich(), console=console, refresh_per_second=2, transient=False) as live:
                while _keep_going(sim, end):
                    time.sleep(min(1.0, _left(end)))
                    connectors_started = connectors_started or _start_connectors(platform, sim, clock, connector_cfgs)
                    live.update(status.rich())
        else:
            next_line = 0.0
            while _keep_going(sim, end):
                connectors_started = connectors_started or _start_connectors(platform, sim, clock, connector_cfgs)
                if time.monotonic() >= next_line:
                    print(status.plain(), flush=True)
                    next_line = time.monotonic() + 5
                time.sleep(min(0.5, _left(end)))
    except KeyboardInterrupt:
        say("stopping ...")


def _start_connectors(platform: Platform, sim: Simulator, clock: DemoClock, connector_cfgs: list) -> bool:
    """Starts the Modbus and OPC UA connectors once the simulation runs live; True once they are started."""
    if not connector_cfgs:
        return True
    if sim.caught_up_wall_us is None or not clock.live:
        return False
    from plantguard.connectors.registry import validate as validate_connectors

    for cls, ccfg in validate_connectors(connector_cfgs):
        platform.add_source(cls(ccfg, platform.pipeline, clock=platform.clock))
    return True


def rul_text(rul: dict | None) -> str:
    """'3.1 h (90 % interval 2.0-4.6 h), PREDICTIVE ALERT' from the RUL estimate the analytics keep."""
    if not rul:
        return "remaining life: no estimate yet"
    state = rul.get("state")
    if state == "insufficient_data":
        return "learning the healthy baseline"
    if state == "healthy":
        return "healthy (no degradation trend)"
    if state == "failed":
        return "FAILED (at the failure threshold)"

    def h(x):
        return "inf" if x is None or not math.isfinite(x) else f"{x / 3600:.1f}"

    text = (f"remaining life {h(rul['median'])} h ({100 * rul.get('level', 0.9):.0f} % interval "
            f"{h(rul['lower'])}-{h(rul['upper'])} h)")
    return text + (f", PREDICTIVE ALERT (lead time {h(rul['lead_time_s'])} h)" if rul.get("alert") else "")


def _keep_going(sim: Simulator, end: float | None) -> bool:
    return sim.running and (end is None or time.monotonic() < end)


def _left(end: float | None) -> float:
    return 1.0 if end is None else max(0.01, end - time.monotonic())


def _summary(cfg, sim: Simulator, timeline: Timeline, alarms_on: bool, wall_s: float) -> dict:
    """Read back from the closed store, so the numbers are what was durably written."""
    from plantguard.store import open_store

    store = open_store(cfg.storage)
    try:
        counts = store.counts()
        raised = [e for e in store.alarm_events(limit=1_000_000) if e.event == "raised"] if alarms_on else []
        alerts = [e for e in store.analytics_events(kind="rul", key=f"rul/{PUMP}", limit=10_000) if e.rule == "rul-alert"]
    finally:
        store.close()
    first = min(alerts, key=lambda e: e.ts) if alerts else None
    return {
        "readings": sim.readings,
        "accepted": counts["raw"],
        "alarms_raised": len(raised),
        "alarms": sorted({e.alarm_id for e in raised}),
        "sim_start": iso(sim.start_us),
        "sim_end": iso(sim.time_us),
        "caught_up": sim.caught_up_wall_us is not None,
        "generation_rate": round(sim.rate()),
        "wall_seconds": round(wall_s, 2),
        "timeline": {"onset": iso(timeline.onset_us), "hi": iso(timeline.hi_us), "hihi": iso(timeline.hihi_us),
                     "failure": iso(timeline.failure_us)},
        "predictive_alert": None if first is None else {
            "at": iso(first.ts), "hours_before_failure": (timeline.failure_us - first.ts) / (3600 * US), "message": first.message},
    }
