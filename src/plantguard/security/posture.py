"""The device posture audit: what an attacker would look for first, per device of the inventory.

Each check has an id, a severity, a title and a remediation; a finding carries the device and the evidence. The
facts are gathered once (the plant model, the connectors that read each device, the broker credentials, the last
reading of each device, the identity first seen) and every check is a pass over them, so the audit of 10,000
devices takes well under a second plus the advisory matching (bench/posture_audit.py).

    report = audit(facts, advisories=AdvisoryIndex(...), now=...)
    report.findings   # [Finding(check, severity, device, title, evidence, remediation, ambiguous)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

SEVERITIES = ("info", "low", "medium", "high", "critical")
US = 1_000_000


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    device: str
    title: str
    evidence: dict
    remediation: str
    ambiguous: bool = False


@dataclass
class DeviceFacts:
    path: str
    inventory: dict = field(default_factory=dict)  # vendor, product, model, firmware, serial, owner, criticality
    links: list[dict] = field(default_factory=list)  # one per connector reading the device: type, name, details
    writable_points: list[str] = field(default_factory=list)
    shadow: bool = False
    period_us: int | None = None  # the shortest point period
    last_seen_us: int | None = None
    credentials: list[dict] = field(default_factory=list)  # username, created_at, expires_at, revoked_at, suspended
    first_seen: dict | None = None  # the identity recorded at the first audit


@dataclass
class Report:
    devices: int
    findings: list[Finding]
    advisories: int = 0
    advisory_problems: list[str] = field(default_factory=list)
    at: int = 0

    def by_severity(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out


@dataclass(frozen=True)
class Check:
    id: str
    severity: str
    title: str
    remediation: str
    run: Callable[[DeviceFacts, dict], list[dict]]  # -> evidence per finding


def _links(t: str):
    return lambda f: [x for x in f.links if x["type"] == t]


def _modbus(f: DeviceFacts, ctx) -> list[dict]:
    return [{"connector": x["name"], "endpoint": x.get("endpoint")} for x in _links("modbus")(f)]


def _opcua_none(f: DeviceFacts, ctx) -> list[dict]:
    return [{"connector": x["name"], "endpoint": x.get("endpoint"), "security_mode": x.get("security_mode")}
            for x in _links("opcua")(f) if x.get("security_mode") == "None"]


def _opcua_unpinned(f: DeviceFacts, ctx) -> list[dict]:
    return [{"connector": x["name"], "endpoint": x.get("endpoint")} for x in _links("opcua")(f)
            if x.get("security_mode") != "None" and not x.get("server_certificate")]


def _mqtt_plain(f: DeviceFacts, ctx) -> list[dict]:
    return [{"connector": x["name"], "broker": x.get("endpoint")} for x in f.links if x["type"] in ("mqtt", "sparkplug")
            and not x.get("tls")]


def _mqtt_anonymous(f: DeviceFacts, ctx) -> list[dict]:
    if not any(x["type"] in ("mqtt", "sparkplug") for x in f.links):
        return []
    live = [c for c in f.credentials if c.get("revoked_at") is None and not c.get("suspended")
            and (c.get("expires_at") is None or c["expires_at"] > ctx["now"])]
    return [] if live else [{"live_credentials": 0}]


def _writable(f: DeviceFacts, ctx) -> list[dict]:
    return [{"points": f.writable_points[:20], "count": len(f.writable_points)}] if f.writable_points else []


def _never_rotated(f: DeviceFacts, ctx) -> list[dict]:
    limit = ctx["max_credential_age_us"]
    return [{"username": c["username"], "age_days": round((ctx["now"] - c["created_at"]) / 86400 / US, 1)}
            for c in f.credentials if c.get("revoked_at") is None and ctx["now"] - c["created_at"] > limit]


def _expiring(f: DeviceFacts, ctx) -> list[dict]:
    soon = ctx["now"] + ctx["expiry_warning_us"]
    return [{"username": c["username"], "expires_at": c["expires_at"]} for c in f.credentials
            if c.get("revoked_at") is None and c.get("expires_at") and ctx["now"] < c["expires_at"] <= soon]


def _weak_key(f: DeviceFacts, ctx) -> list[dict]:
    from plantguard.security.ca import weak_key

    return [{"credential": c["username"], "key_type": c.get("key_type"), "key_bits": c.get("key_bits")} for c in f.credentials
            if c.get("kind") == "certificate" and c.get("revoked_at") is None and weak_key(c.get("key_type", ""), c.get("key_bits", 0))]


def _revoked_in_use(f: DeviceFacts, ctx) -> list[dict]:
    # every credential of the device is revoked or expired, yet readings keep arriving after that: the broker is
    # not enforcing its password file, ACL or CRL (or another path lets the device in)
    if not f.credentials or f.last_seen_us is None:
        return []
    now = ctx["now"]
    live = [c for c in f.credentials if c.get("revoked_at") is None and not c.get("suspended")
            and (c.get("expires_at") is None or c["expires_at"] > now)]
    if live:
        return []
    ended = max((c["revoked_at"] if c.get("revoked_at") is not None else c.get("expires_at") or 0) for c in f.credentials)
    if f.last_seen_us <= ended + ctx["grace_us"]:
        return []
    return [{"credentials_ended_at": ended, "last_seen": f.last_seen_us, "credentials": [c["username"] for c in f.credentials][:10]}]


def _silent(f: DeviceFacts, ctx) -> list[dict]:
    if f.period_us is None:
        return []
    allowed = max(10 * f.period_us, ctx["silent_min_us"])
    if f.last_seen_us is None:
        return [{"last_seen": None, "allowed_s": allowed / US}]
    quiet = ctx["now"] - f.last_seen_us
    return [{"last_seen": f.last_seen_us, "silent_s": round(quiet / US), "allowed_s": allowed / US}] if quiet > allowed else []


def _no_owner(f: DeviceFacts, ctx) -> list[dict]:
    missing = [k for k in ("owner", "criticality") if not f.inventory.get(k)]
    return [{"missing": missing}] if missing else []


def _identity_changed(f: DeviceFacts, ctx) -> list[dict]:
    if not f.first_seen:
        return []
    keys = ("vendor", "product", "model", "firmware", "serial")
    changed = {k: {"first_seen": f.first_seen.get(k), "now": f.inventory.get(k)} for k in keys
               if f.first_seen.get(k) is not None and f.first_seen.get(k) != f.inventory.get(k)}
    return [{"changed": changed}] if changed else []


def _shared_client_id(f: DeviceFacts, ctx) -> list[dict]:
    ids = [x.get("client_id") for x in f.links if x.get("client_id")]
    return [{"client_id": i, "connectors": ctx["client_ids"][i]} for i in set(ids) if len(ctx["client_ids"].get(i, [])) > 1]


CHECKS: tuple[Check, ...] = (
    Check("protocol.modbus_plaintext", "medium", "Modbus TCP: no authentication, no encryption",
          "Keep the PLC on an isolated OT segment, allow only plantguard's address at the firewall, or read it through "
          "a gateway that speaks a secured protocol.", _modbus),
    Check("protocol.opcua_security_none", "high", "OPC UA with security mode None: traffic is neither signed nor encrypted",
          "Set security.mode SignAndEncrypt (policy Basic256Sha256 or newer) with a client certificate.", _opcua_none),
    Check("protocol.opcua_server_not_pinned", "medium", "OPC UA server certificate not pinned: any server that answers is trusted",
          "Set security.server_certificate to the server's certificate.", _opcua_unpinned),
    Check("protocol.mqtt_without_tls", "medium", "MQTT without TLS: readings and credentials cross the network in clear",
          "Use the broker's TLS listener (port 8883) for devices and for plantguard.", _mqtt_plain),
    Check("protocol.writable_points", "high", "Points plantguard may write to",
          "Keep writes off unless an approved procedure needs them; each write is audited.", _writable),
    Check("credentials.no_device_credential", "high", "An MQTT device without its own broker credential: it could publish as any device",
          "Issue a per-device credential (plantguard devices credential issue) and run the broker with the generated ACL.",
          _mqtt_anonymous),
    Check("credentials.never_rotated", "medium", "A device credential older than the rotation period",
          "Rotate it (plantguard devices credential rotate): the old key keeps working for the overlap.", _never_rotated),
    Check("credentials.expiring", "low", "A device credential that expires soon",
          "Deploy the rotated key to the device before the old one expires.", _expiring),
    Check("credentials.weak_key", "high", "A device certificate with a weak key (RSA under 2048 bits, EC under 256)",
          "Rotate it with a new key (plantguard devices certificate rotate).", _weak_key),
    Check("credentials.revoked_still_in_use", "critical",
          "Readings still arrive from a device whose every credential is revoked or expired",
          "Check that the broker runs with the generated password, ACL and CRL files (and reloads them) and that no "
          "other route (anonymous listener, shared account) lets the device in.", _revoked_in_use),
    Check("credentials.conflicting_client_id", "medium", "Two connectors use the same MQTT client id: they take each other's session",
          "Give every connector its own client_id.", _shared_client_id),
    Check("behaviour.silent", "medium", "A device silent for longer than expected",
          "Check the device and its link; a silent safety device is a blind spot.", _silent),
    Check("inventory.no_owner", "low", "A device with no owner or no criticality",
          "Add inventory.owner and inventory.criticality in the plant model: findings need someone to act on them.", _no_owner),
    Check("identity.changed", "high", "The device's identity changed since it was first seen: a swapped unit or new firmware",
          "Confirm the change was planned (a maintenance order); if not, treat the device as compromised.", _identity_changed),
)
PLATFORM = "platform"  # the "device" of findings about plantguard's own host
DATA_DIR_CHECK = Check(
    "platform.data_dir_exposed", "high", "plantguard's data directory (readings, audit log, password hashes, keys) is "
    "readable by other users of its host",
    "Make it owner-only: chmod -R go-rwx on it (plantguard does so itself at its next start). A local account could "
    "otherwise read every reading and the keys that seal second-factor secrets.", lambda f, ctx: [])
CHECK_IDS = {c.id: c for c in (*CHECKS, DATA_DIR_CHECK)}


def host_findings(dirs) -> list[Finding]:
    """Findings on the platform's own directories: any entry that group or others may read, write or enter."""
    from plantguard.fsperm import exposed

    out = []
    for d in dirs:
        bad = exposed(d)
        if bad:
            out.append(Finding(DATA_DIR_CHECK.id, DATA_DIR_CHECK.severity, PLATFORM, DATA_DIR_CHECK.title,
                               {"directory": str(d), "exposed": len(bad), "examples": [f"{p} {m:o}" for p, m in bad[:10]]},
                               DATA_DIR_CHECK.remediation))
    return out


def audit(devices: list[DeviceFacts], *, now: int, advisories=None, advisory_problems: list[str] | None = None,
          max_credential_age_days: float = 365, expiry_warning_days: float = 14, silent_min_s: float = 3600,
          mute: set[tuple[str, str]] | None = None) -> Report:
    """Every check over every device; `mute` holds (check, device) pairs accepted by triage."""
    client_ids: dict[str, list[str]] = {}
    seen_connector: set[tuple[str, str]] = set()
    for f in devices:
        for x in f.links:
            if x.get("client_id") and (x["name"], x["client_id"]) not in seen_connector:
                seen_connector.add((x["name"], x["client_id"]))
                client_ids.setdefault(x["client_id"], []).append(x["name"])
    ctx = {"now": now, "max_credential_age_us": int(max_credential_age_days * 86400 * US),
           "expiry_warning_us": int(expiry_warning_days * 86400 * US), "silent_min_us": int(silent_min_s * US),
           "client_ids": client_ids, "grace_us": 5 * 60 * US}
    mute = mute or set()
    findings: list[Finding] = []
    for f in devices:
        for c in CHECKS:
            if (c.id, f.path) in mute:
                continue
            for ev in c.run(f, ctx):
                findings.append(Finding(c.id, c.severity, f.path, c.title, ev, c.remediation))
        if advisories is not None and ("advisory", f.path) not in mute:
            inv = f.inventory
            for m in advisories.match(inv.get("vendor"), inv.get("product"), inv.get("firmware")):
                sev = _cvss_severity(m.advisory.score)
                findings.append(Finding(
                    "advisory.known_vulnerability", sev, f.path,
                    f"{m.advisory.id}: {m.advisory.title}" + ("" if m.certain else " (ambiguous match)"),
                    {"advisory": m.advisory.id, "cves": m.advisory.cves, "cvss": m.advisory.score, "product": m.product.product,
                     "versions": m.product.versions, "why": m.why, "source": m.advisory.source},
                    "; ".join(m.advisory.remediations) or "See the advisory.", ambiguous=not m.certain))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda x: (-order[x.severity], x.device, x.check))
    return Report(len(devices), findings, len(advisories.advisories) if advisories is not None else 0,
                  list(advisory_problems or []), now)


def _cvss_severity(score: float | None) -> str:
    if score is None:
        return "medium"
    return "critical" if score >= 9 else "high" if score >= 7 else "medium" if score >= 4 else "low"
