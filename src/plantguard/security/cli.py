"""`plantguard users ...` and `plantguard audit verify`: accounts and the audit log of a stopped plant (the
embedded store allows one process at a time; with PostgreSQL they also work next to a running server)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from plantguard.cli.common import EXIT_FAILED, EXIT_USAGE, ConfigOpt, DataDirOpt, _errors, _fail, _load, _services
from plantguard.domain.actor import Actor

users_app = typer.Typer(help="User accounts and API tokens (see docs/security.md).", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _password(env: Optional[str]) -> str:
    if env:
        pw = os.environ.get(env)
        if not pw:
            _fail(f"the environment variable {env} is not set", EXIT_USAGE)
        return pw
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def users_add(name: str = typer.Argument(..., help="User name."),
              role: str = typer.Option(..., help="admin, engineer, operator or viewer."),
              password_env: Optional[str] = typer.Option(None, help="Read the password from this environment variable (else it is asked)."),
              config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create a user."""
    with _services(config, data_dir) as p:
        u = p.accounts.create_user(name, role, _password(password_env), Actor.cli())
    typer.echo(f"created {u.name} ({u.role.value})")


@users_app.command("list")
def users_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Users with their role, second factor and state."""
    with _services(config, data_dir) as p:
        for u in p.accounts.users():
            typer.echo(f"{u.name}\t{u.role.value}\t{'mfa' if u.mfa else 'no-mfa'}\t{'disabled' if u.disabled else 'enabled'}")


@users_app.command("passwd")
def users_passwd(name: str = typer.Argument(...), password_env: Optional[str] = typer.Option(None),
                 config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Set a user's password (ends the user's sessions)."""
    with _services(config, data_dir) as p:
        p.accounts.set_password(name, _password(password_env), Actor.cli())
    typer.echo(f"password of {name} changed")


@users_app.command("mfa")
def users_mfa(name: str = typer.Argument(...), config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Enrol a user's TOTP second factor at the machine (needed before a user of a role in security.mfa_roles,
    the first admin included, can log in): shows the otpauth URI for the authenticator app, then asks a code."""
    with _services(config, data_dir) as p:
        uri = p.accounts.start_totp(name, Actor.cli())
        typer.echo(f"add this to the authenticator app (or make a QR code of it):\n  {uri}")
        p.accounts.confirm_totp(name, typer.prompt("code shown by the app"), Actor.cli())
    typer.echo(f"second factor of {name} enabled")


@users_app.command("token")
def users_token(owner: str = typer.Argument(..., help="The user the token acts for (never above that user's role)."),
                name: str = typer.Option(..., help="A name for the token, e.g. the script or device using it."),
                scope: list[str] = typer.Option([], help="Limit it to these permissions (repeat), e.g. --scope ingest."),
                days: int = typer.Option(90, min=1, max=3650, help="Lifetime in days."),
                device: Optional[str] = typer.Option(None, help="A device path, or the asset/line/area/site a gateway serves: the token may only send readings under it."),
                config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create an API token; its secret is printed once."""
    with _services(config, data_dir) as p:
        secret, t = p.accounts.create_token(owner, name, scopes=scope or None, days=days, device=device, actor=Actor.cli())
    typer.echo(secret)
    typer.echo(f"token {t.id} for {t.owner} ({', '.join(t.scopes)}), valid {days} days; shown only now", err=True)


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None, data_dir: DataDirOpt = None,
                 witness: Optional[Path] = typer.Option(None, "--checkpoint", "--witness", help="The witness file (leaves and signed checkpoints), or a syslog file holding the exported checkpoints; default: the configured witness."),
                 public_key: Optional[str] = typer.Option(None, help="The signing key's public half (hex) to trust; default: <data_dir>/audit/signing.pub."),
                 fmt: str = typer.Option("text", "--format", help="text or json")) -> None:
    """Check the audit log against its witness offline: names the first entry that was edited, inserted, moved,
    deleted or cut off. Exit 0 when the log is intact, 1 when it is not."""
    from plantguard.security.audit import verify_offline

    if (config is None) == (data_dir is None):
        _fail("give either --config FILE or --data-dir DIR", EXIT_USAGE)
    with _errors():
        storage = witness_default = None
        if config is not None:
            cfg = _load(config)
            storage = cfg.storage
            sec = cfg.section("security")
            witness_default = sec.audit_witness if sec is not None else None
        try:
            v = verify_offline(storage=storage, data_dir=data_dir, witness=witness or witness_default, public_key=public_key)
        except FileNotFoundError as e:
            _fail(str(e))
    if fmt == "json":
        typer.echo(json.dumps(v.__dict__))
    else:
        typer.echo(f"{'intact' if v.ok else 'TAMPERED'}: {v.entries} entries, {v.covered} under {v.checkpoints} signed checkpoint(s)")
        if not v.ok:
            typer.echo(f"  first bad entry: {v.first_bad}: {v.problem}")
        for n in v.notes:
            typer.echo(f"  note: {n}")
    if not v.ok:
        raise typer.Exit(EXIT_FAILED)


SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")


@audit_app.command("devices")
def audit_devices(config: ConfigOpt = None, data_dir: DataDirOpt = None,
                  advisories: Optional[Path] = typer.Option(None, help="Directory of CSAF 2.0 advisories (*.json with .sha512); default: security.advisories_dir."),
                  min_severity: str = typer.Option("low", help="Show findings of this severity and above: info, low, medium, high, critical."),
                  fail_on: Optional[str] = typer.Option(None, help="Exit 1 when a finding of this severity or above remains (for scheduled checks)."),
                  fmt: str = typer.Option("text", "--format", help="text or json")) -> None:
    """The posture audit of every device: protocol security, credentials, silence, ownership, identity changes and
    known vulnerabilities from advisories. The run is recorded in the audit log, and the changed risk scores in the
    register's history."""
    for name, v in (("--min-severity", min_severity), ("--fail-on", fail_on)):
        if v is not None and v not in SEVERITY_ORDER:
            _fail(f"{name} is one of {', '.join(SEVERITY_ORDER)}", EXIT_USAGE)
    with _services(config, data_dir) as p:
        r = p.posture.run(Actor.cli(), advisories_dir=advisories)
        p.risks.record(r)
    floor = SEVERITY_ORDER.index(min_severity)
    shown = [f for f in r.findings if SEVERITY_ORDER.index(f.severity) >= floor]
    if fmt == "json":
        from dataclasses import asdict

        typer.echo(json.dumps({"devices": r.devices, "advisories": r.advisories, "advisory_problems": r.advisory_problems,
                               "by_severity": r.by_severity(), "findings": [asdict(f) for f in shown]}))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in reversed(list(r.by_severity().items())) if v)
        typer.echo(f"{r.devices} devices, {len(r.findings)} findings ({counts or 'none'}), {r.advisories} advisories")
        for prob in r.advisory_problems:
            typer.echo(f"  advisory refused: {prob}")
        for f in shown:
            typer.echo(f"{f.severity.upper():8s} {f.device}  {f.title}" + ("  [ambiguous]" if f.ambiguous else ""))
            typer.echo(f"         evidence: {json.dumps(f.evidence, default=str)[:300]}")
            typer.echo(f"         do: {f.remediation}")
    if fail_on is not None and any(SEVERITY_ORDER.index(f.severity) >= SEVERITY_ORDER.index(fail_on) for f in r.findings):
        raise typer.Exit(EXIT_FAILED)


devices_app = typer.Typer(help="Device credentials for the MQTT broker (see docs/security.md#device-identity).", no_args_is_help=True)


@devices_app.command("credential")
def device_credential(action: str = typer.Argument(..., help="issue, rotate, revoke or list"),
                      device: Optional[str] = typer.Argument(None, help="Device path site/area/line/asset/device."),
                      overlap: float = typer.Option(86400, help="With rotate: seconds the old keys keep working."),
                      config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Issue, rotate, revoke or list a device's broker credentials; the broker's files are rewritten and it is
    told to reload them. A new password is printed once."""
    if action not in ("issue", "rotate", "revoke", "list"):
        _fail("the action is issue, rotate, revoke or list", EXIT_USAGE)
    if action != "list" and not device:
        _fail("give the device path", EXIT_USAGE)
    with _services(config, data_dir) as p:
        creds = p.broker_credentials
        if action == "list":
            for c in creds.credentials(device):
                state = "revoked" if c.revoked_at else "suspended" if c.suspended else "live"
                typer.echo(f"{c.device}\t{c.username}\t{state}\texpires {c.expires_at or 'never'}")
            return
        if action == "revoke":
            typer.echo(f"revoked {creds.revoke(device, Actor.cli())} key(s) of {device}")
            return
        user, pw = creds.issue(device, Actor.cli()) if action == "issue" else creds.rotate(device, Actor.cli(), overlap)
    typer.echo(f"username: {user}")
    typer.echo(f"password: {pw}")
    typer.echo("the password is shown only now: configure it on the device", err=True)


def _write_secret(out: Path, name: str, cert_pem: str, key_pem: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.pem").write_text(cert_pem)
    if key_pem is not None:
        fd = os.open(out / f"{name}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key_pem)
    typer.echo(f"wrote {out / (name + '.pem')}" + (f" and {out / (name + '.key')} (mode 0600)" if key_pem else ""))


@devices_app.command("certificate")
def device_certificate(action: str = typer.Argument(..., help="issue, rotate, revoke or list"),
                       device: Optional[str] = typer.Argument(None, help="Device path site/area/line/asset/device."),
                       out: Path = typer.Option(Path("."), help="Directory the certificate (and a made key) are written to."),
                       csr: Optional[Path] = typer.Option(None, help="A PEM CSR: the device keeps its own key."),
                       overlap: float = typer.Option(86400, help="With rotate: seconds the old certificate keeps working."),
                       reason: str = typer.Option("unspecified", help="With revoke: key_compromise, superseded, cessation_of_operation..."),
                       config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """X.509 client certificates from the built-in CA: issue, rotate, revoke or list. The CRL is rewritten and the
    broker told to reload it; a key made here is written once (mode 0600) and not kept."""
    if action not in ("issue", "rotate", "revoke", "list"):
        _fail("the action is issue, rotate, revoke or list", EXIT_USAGE)
    if action != "list" and not device:
        _fail("give the device path", EXIT_USAGE)
    csr_pem = csr.read_bytes() if csr is not None else None
    with _services(config, data_dir) as p:
        ca = p.ca
        if action == "list":
            now = p.clock()
            for c in ca.certificates(device):
                state = ("revoked" if c.revoked_at else "held" if c.suspended else "expired" if not c.active(now) else "live")
                typer.echo(f"{c.device}\t{c.serial}\t{state}\t{c.key_type}\tnot after {c.not_after}")
            return
        if action == "revoke":
            typer.echo(f"revoked {ca.revoke(device, Actor.cli(), reason=reason)} certificate(s) of {device}")
            return
        issued = (ca.issue(device, Actor.cli(), csr_pem=csr_pem) if action == "issue"
                  else ca.rotate(device, Actor.cli(), overlap_s=overlap, csr_pem=csr_pem))
        ca_path = ca.cert_path
    _write_secret(out, device.replace("/", "_"), issued.cert_pem, issued.key_pem)
    typer.echo(f"serial {issued.serial}; the device trusts {ca_path}")


ca_app = typer.Typer(help="The built-in certificate authority (see docs/security.md#certificates).", no_args_is_help=True)


@ca_app.command("show")
def ca_show(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Where the CA certificate and the CRL are, and the CA's fingerprint (made on first use)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    with _services(config, data_dir) as p:
        ca = p.ca
        cert = x509.load_pem_x509_certificate(ca.ca_pem().encode())
        if not ca.crl_path.exists():
            ca.apply()
        typer.echo(f"certificate  {ca.cert_path}")
        typer.echo(f"subject      {cert.subject.rfc4514_string()}")
        typer.echo(f"sha256       {cert.fingerprint(hashes.SHA256()).hex()}")
        typer.echo(f"not after    {cert.not_valid_after_utc.isoformat()}")
        typer.echo(f"crl          {ca.crl_path}")


@ca_app.command("server-cert")
def ca_server_cert(name: str = typer.Argument(..., help="A name for the server, e.g. broker or api."),
                   host: list[str] = typer.Option(..., "--host", help="Host name or address clients connect to (repeat)."),
                   out: Path = typer.Option(Path("."), help="Directory to write <name>.pem and <name>.key to."),
                   config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """A TLS server certificate for the broker's listener or the API (api.tls_cert / api.tls_key)."""
    with _services(config, data_dir) as p:
        cert, key = p.ca.server(name, host)
    _write_secret(out, name, cert, key)


@ca_app.command("client-cert")
def ca_client_cert(name: str = typer.Argument("plantguard-ingest", help="The client's user name on the broker."),
                   out: Path = typer.Option(Path("."), help="Directory to write <name>.pem and <name>.key to."),
                   config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """A client certificate for plantguard's own MQTT connector on a mutual-TLS listener (its `tls:` settings)."""
    with _services(config, data_dir) as p:
        cert, key = p.ca.client(name)
    _write_secret(out, name, cert, key)


@ca_app.command("listener")
def ca_listener(port: int = typer.Option(8883, min=1, max=65535), host: str = typer.Option("0.0.0.0"),
                cert: Path = typer.Option(..., help="The broker's server certificate (from server-cert)."),
                key: Path = typer.Option(..., help="Its key."),
                config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Prints the mosquitto.conf lines of a mutual-TLS listener that takes this CA's device certificates and CRL."""
    from plantguard.security.broker import listener_conf

    with _services(config, data_dir) as p:
        ca = p.ca
        if not ca.crl_path.exists():
            ca.apply()
        typer.echo(listener_conf(port=port, host=host, ca_file=str(ca.cert_path), cert_file=str(cert.resolve()),
                                 key_file=str(key.resolve()), crl_file=str(ca.crl_path)), nl=False)


keys_app = typer.Typer(help="The keys that seal secrets and learned state at rest (see docs/security.md).", no_args_is_help=True)


def _rings(p):
    from plantguard.keys import state_ring

    st = p.model.current().storage
    return {"secrets": p.accounts.key_ring(), "state": state_ring(st.data_dir, st.key_dir)}


@keys_app.command("show")
def keys_show(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Each key ring: where it is, its key ids (primary first) and which of them stored values use."""
    with _services(config, data_dir) as p:
        in_use = p.accounts.keys_in_use()
        for name, ring in _rings(p).items():
            where = ring.path or "the environment"
            ids = ", ".join(f"{k}{' (primary)' if i == 0 else ''}{' in use' if k in in_use else ''}" for i, k in enumerate(ring.kids()))
            typer.echo(f"{name}: {where}: {ids}")


@keys_app.command("rotate")
def keys_rotate(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """A new primary key for each ring; the second-factor secrets are sealed again under it, checkpoints at their
    next save. Older keys stay (backups sealed with them still open) until `keys retire`."""
    with _services(config, data_dir) as p:
        kid, n = p.accounts.rotate_key()
        typer.echo(f"secrets: new primary key {kid}")
        typer.echo(f"state: new primary key {_rings(p)['state'].rotate()}")
        p.audit.record(Actor.cli(), "keys.rotate", "secrets,state", detail={"resealed": n})
    typer.echo(f"sealed {n} second-factor secret(s) again under the new key")


@keys_app.command("retire")
def keys_retire(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Drops the older secrets keys that no stored secret uses any more (checkpoint keys stay: a partition's
    checkpoint may not have been saved since the rotation)."""
    with _services(config, data_dir) as p:
        ring = _rings(p)["secrets"]
        gone = ring.retire(p.accounts.keys_in_use())
        p.audit.record(Actor.cli(), "keys.retire", "secrets", detail={"retired": gone})
    typer.echo(f"retired {len(gone)} key(s){': ' + ', '.join(gone) if gone else ''}")
