"""The security capability: its `security:` section, its tables, the accounts and audit services, the audit
subscriptions on the event bus (model edits, operator actions on alarms), and its routers."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from plantguard.capabilities import Capability, Context, Parts
from plantguard.security.config import SecuritySettings
from plantguard.store.migrations import Migration
from plantguard.store.protocols import SqlStore

log = logging.getLogger(__name__)

_TABLES = (
    "CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, pw_hash TEXT NOT NULL, totp_secret TEXT, "
    "disabled BOOLEAN NOT NULL, created_at BIGINT NOT NULL, pw_changed_at BIGINT NOT NULL)",
    "CREATE TABLE api_tokens (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, name TEXT NOT NULL, owner TEXT NOT NULL, "
    "role TEXT NOT NULL, scopes TEXT NOT NULL, device TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, "
    "revoked_at BIGINT, last_used_at BIGINT)",
    "CREATE TABLE sessions (id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL, created_at BIGINT NOT NULL, "
    "last_seen BIGINT NOT NULL, mfa BOOLEAN NOT NULL)",
    "CREATE TABLE login_links (id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)",
    "CREATE TABLE audit_log (seq BIGINT PRIMARY KEY, ts BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, "
    "target TEXT, result TEXT NOT NULL, detail TEXT)",
)
_BROKER = ("CREATE TABLE mqtt_credentials (username TEXT PRIMARY KEY, device TEXT NOT NULL, pw_hash TEXT NOT NULL, "
           "created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT, suspended BOOLEAN NOT NULL)",)
_IDENTITY = ("CREATE TABLE device_identity (device TEXT PRIMARY KEY, first_seen_at BIGINT NOT NULL, identity TEXT NOT NULL)",
             "CREATE TABLE security_triage (check_id TEXT NOT NULL, device TEXT NOT NULL, decision TEXT NOT NULL, actor TEXT NOT NULL, "
             "reason TEXT, decided_at BIGINT NOT NULL, PRIMARY KEY (check_id, device))")
_RISK = ("CREATE TABLE risk_history (device TEXT NOT NULL, at_us BIGINT NOT NULL, likelihood DOUBLE PRECISION NOT NULL, "
         "impact DOUBLE PRECISION NOT NULL, score DOUBLE PRECISION NOT NULL, PRIMARY KEY (device, at_us))",)
_EVENTS = ("CREATE TABLE security_events (device TEXT NOT NULL, rule TEXT NOT NULL, at_us BIGINT NOT NULL, message TEXT NOT NULL, "
           "evidence TEXT NOT NULL, PRIMARY KEY (device, rule, at_us))",)
_QUARANTINE = ("CREATE TABLE quarantine (device TEXT PRIMARY KEY, since_us BIGINT NOT NULL, by_actor TEXT NOT NULL, reason TEXT NOT NULL)",
               "CREATE TABLE quarantine_readings (pid INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL, "
               "quality SMALLINT NOT NULL, src_ts BIGINT NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (pid, ts))")
_CERTS = ("CREATE TABLE device_certificates (serial TEXT PRIMARY KEY, device TEXT NOT NULL, fingerprint TEXT NOT NULL, "
          "key_type TEXT NOT NULL, key_bits INTEGER NOT NULL, created_at BIGINT NOT NULL, not_after BIGINT NOT NULL, "
          "expires_at BIGINT, revoked_at BIGINT, reason TEXT, suspended BOOLEAN NOT NULL, pem TEXT NOT NULL)",)
MIGRATIONS = (Migration("0100_security_accounts_and_audit", embedded=_TABLES, postgres=_TABLES, owner="security"),
              Migration("0101_security_mqtt_credentials", embedded=_BROKER, postgres=_BROKER, owner="security"),
              Migration("0102_security_device_identity_and_triage", embedded=_IDENTITY, postgres=_IDENTITY, owner="security"),
              Migration("0103_security_risk_history", embedded=_RISK, postgres=_RISK, owner="security"),
              Migration("0104_security_events", embedded=_EVENTS, postgres=_EVENTS, owner="security"),
              Migration("0105_security_quarantine", embedded=_QUARANTINE, postgres=_QUARANTINE, owner="security"),
              Migration("0106_security_device_certificates", embedded=_CERTS, postgres=_CERTS, owner="security"))


def build(ctx: Context) -> Parts:
    from plantguard.events import ModelChanged
    from plantguard.security import inventory
    from plantguard.security.broker import BrokerCredentials
    from plantguard.security.ca import CertificateAuthority
    from plantguard.security.events import SecurityEventRaised
    from plantguard.security.quarantine import Quarantine
    from plantguard.security.service import PostureService, RiskService
    from plantguard.security.writes import WriteGate

    s: SecuritySettings = ctx.config or SecuritySettings()
    store, clock, index = ctx.store, ctx.clock, ctx.index
    audit = _audit_log(ctx, s)
    accounts = _accounts(ctx, s, audit)
    devices = lambda: {r.path for r in index().devices()}  # noqa: E731
    ca = CertificateAuthority(ctx.data_dir / "ca", store, s.ca, clock=clock, devices=devices, audit=audit)
    broker = BrokerCredentials(store, s.broker, clock=clock, audit=audit, devices=devices,
                               certificate_devices=ca.active_devices)
    ca.on_change = broker.apply  # the ACL follows the certificates; the reload makes the broker read the new CRL
    telemetry = ctx.uses("telemetry")
    facts = lambda first_seen: inventory.gather(index().cfg, index(), telemetry.latest, broker=broker, ca=ca,  # noqa: E731
                                                first_seen=first_seen)
    posture = PostureService(store, s, clock=clock, facts=facts, storage=ctx.model.storage, audit_log=audit)
    risks = RiskService(store, posture, index=index, clock=clock)
    quarantine = Quarantine(store, ctx.points, index=index, clock=clock, submit=ctx.submit, broker=broker, audit=audit, ca=ca)
    ctx.bus.subscribe("quarantine-model", lambda ev: quarantine.refresh(), ModelChanged)
    if s.quarantine_on:
        rules = list(s.quarantine_on)
        ctx.bus.subscribe("quarantine-policy", lambda ev: quarantine.on_security_event(ev, rules), SecurityEventRaised)
    behaviour = _detection(ctx, s, accounts, posture)

    def site_zone(device: str) -> str:
        site = index().site(device.split("/", 1)[0])
        return getattr(site, "timezone", None) or "UTC"

    gate = WriteGate(quarantine=quarantine, windows=list(s.write_windows), timezone_of=site_zone, clock=clock,
                     raise_event=behaviour.raise_event)
    watcher = _broker_log_watcher(s, clock, behaviour, devices)
    stop = threading.Event()
    threads = [threading.Thread(target=_background, args=(stop, s, audit, ca, accounts, posture, risks, clock),
                                name="security-background", daemon=True)]
    if watcher is not None:
        threads.append(threading.Thread(target=_watch, args=(stop, watcher), name="broker-log", daemon=True))

    def start() -> None:
        if watcher is not None:
            watcher.poll()  # from the end of the file as it is now
        for t in threads:
            t.start()
        if s.broker is not None:
            try:
                broker.apply()  # the files match the store from the first second (expired keys drop out)
            except Exception:  # noqa: BLE001 - a broker file problem must not stop the platform
                log.exception("writing the broker's password and ACL files failed")

    def on_stop() -> None:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(5)
        try:
            accounts.flush_activity()
        except Exception:  # noqa: BLE001 - the store may already refuse; last-used times are advisory
            log.exception("recording session and token activity at stop failed")
        audit.close()

    return Parts(processors=[behaviour], diverter=quarantine,  # a quarantined device's readings go aside
                 services={"accounts": accounts, "audit": audit, "broker_credentials": broker, "ca": ca, "posture": posture,
                           "risks": risks, "behaviour": behaviour, "quarantine": quarantine, "write_gate": gate,
                           **({"broker_log": watcher} if watcher else {})},
                 # a connector that can write to devices: writes to a quarantined device (or outside the write
                 # windows) are refused before they reach the wire; its protocol anomalies become security events
                 source_hooks={"write_gate": gate.refusal, "security_signal": behaviour.raise_event},
                 on_start=[start], on_stop=[on_stop])


def _audit_log(ctx: Context, s: SecuritySettings):
    """The signed audit log: the sink of the platform's audit trail (plantguard.auditing) and of this capability's
    own records, written directly because they must be in the log before the action answers."""
    from plantguard.security.audit import AuditLog, SyslogExporter

    base = ctx.data_dir / "audit"
    return AuditLog(ctx.store, Path(s.audit_key) if s.audit_key else base / "signing.key",
                    Path(s.audit_witness) if s.audit_witness else base / "witness.jsonl", clock=ctx.clock,
                    exporters=[SyslogExporter(s.audit_syslog, s.audit_syslog_facility)] if s.audit_syslog else [])


def _accounts(ctx: Context, s: SecuritySettings, audit):
    """Users, sessions and tokens, second-factor secrets sealed with the key kept outside the store."""
    from plantguard.keys import secrets_ring
    from plantguard.security.accounts import Accounts
    from plantguard.security.sealed import SecretBox

    def known_path(path: str) -> bool:
        idx = ctx.index()
        return any(f(path) is not None for f in (idx.device, idx.asset, idx.line, idx.site)) or \
            path.count("/") == 1 and any(r.path.startswith(path + "/") for r in idx.lines())  # an area

    accounts = Accounts(ctx.store, s, clock=ctx.clock, audit=audit, box=SecretBox(secrets_ring(ctx.data_dir, ctx.key_dir)),
                        known_path=known_path)
    sealed_now = accounts.seal_secrets()  # secrets of an older store sealed on its first start
    if sealed_now:
        log.warning("sealed %d second-factor secret(s) that were kept in clear", sealed_now)
    return accounts


def _detection(ctx: Context, s: SecuritySettings, accounts, posture):
    """Behavioural detection (a processor), fed also by lockouts and by senders that leave their scope."""
    from plantguard.events import ScopeViolation
    from plantguard.security.behaviour import BehaviourProcessor
    from plantguard.security.events import SecurityEventRaised, store_events

    behaviour = BehaviourProcessor(ctx.points, ctx.model, s.behaviour, clock=ctx.clock,
                                   sink=lambda evs: store_events(ctx.store, evs),
                                   publish=lambda e: ctx.bus.publish(SecurityEventRaised(e)), muted=posture.triage)

    def on_lockout(key: str, limit: int) -> None:
        kind, _, who = key.partition(":")
        subject = f"address:{who}" if kind == "addr" else f"user:{who}"
        behaviour.raise_event(subject, "access.auth_failures", f"{limit} failed logins from {subject} within "
                              f"{s.login_window:g} s: locked for {s.login_lockout:g} s", {"key": subject, "failures": limit})

    accounts.on_lockout = on_lockout

    def on_scope_violation(ev) -> None:
        behaviour.raise_event(ev.bound_to, "access.scope_violation",
                              f"a sender bound to {ev.bound_to} tried to send {ev.point}: refused",
                              {"point": ev.point, "principal": ev.principal})

    ctx.bus.subscribe("scope-violations", on_scope_violation, ScopeViolation)
    return behaviour


def _broker_log_watcher(s: SecuritySettings, clock, behaviour, devices):
    if s.broker is None or not s.broker.log_file:
        return None
    from plantguard.security.broker_log import BrokerLogWatcher, device_of_username

    return BrokerLogWatcher(s.broker.log_file, clock=clock, raise_event=behaviour.raise_event,
                            device_of=device_of_username(devices), auth_failures=s.broker.auth_failures,
                            auth_window_s=s.broker.auth_window_s)


def _background(stop: threading.Event, s: SecuritySettings, audit, ca, accounts, posture, risks, clock) -> None:
    """The capability's periodic work, each part on its own interval and each failure retried at the next: session
    and token activity (batched: checks write nothing), the signed tree head of the audit log, the CRL, and the
    risk register's record (reads record nothing)."""
    every = {"checkpoint": s.audit_checkpoint_every, "risk": s.risk_record_every}
    due = {"checkpoint": 0.0, "risk": time.monotonic() + min(every["risk"], 60.0)}  # a first record soon after start
    while not stop.wait(min(every.values())):
        now = time.monotonic()
        try:
            accounts.flush_activity()
        except Exception:  # noqa: BLE001 - kept in memory and retried at the next tick
            log.exception("recording session and token activity failed")
        if now >= due["checkpoint"]:
            due["checkpoint"] = now + every["checkpoint"]
            try:
                audit.checkpoint()
            except Exception:  # noqa: BLE001
                log.exception("writing the audit checkpoint failed")
            try:
                ca.on_tick(clock())  # the CRL renewed, rotations' overlaps ended
            except Exception:  # noqa: BLE001
                log.exception("renewing the certificate revocation list failed")
        if now >= due["risk"]:
            due["risk"] = now + every["risk"]
            try:
                risks.record(posture.run(record=True))
            except Exception:  # noqa: BLE001
                log.exception("recording the risk register failed")


def _watch(stop: threading.Event, watcher) -> None:
    while not stop.wait(1.0):
        try:
            watcher.poll()
        except Exception:  # noqa: BLE001 - retried at the next second
            log.exception("reading the broker's log failed")


def routers() -> list:
    from plantguard.security import api, auth_api

    return [auth_api.router, api.router]


def pages() -> list:
    from plantguard.security import auth_api, pages

    return [auth_api.pages, pages.router]  # the login page, the security and administration pages


def commands() -> list:
    from plantguard.security import cli

    return [("users", cli.users_app), ("audit", cli.audit_app), ("devices", cli.devices_app), ("ca", cli.ca_app),
            ("keys", cli.keys_app)]


CAPABILITY = Capability("security", section=SecuritySettings, migrations=MIGRATIONS, build=build, stores=(SqlStore,),
                        routers=routers, pages=pages, commands=commands)
