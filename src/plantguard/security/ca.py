"""The built-in certificate authority: X.509 client certificates for devices and gateways, server certificates
for the broker's TLS listener and the API, and the certificate revocation list (CRL) the broker checks.

    ca = CertificateAuthority(directory, store, clock=..., devices=..., audit=...)
    cert = ca.issue("s1/a1/l1/pump1/plc1", actor)                # a key pair made here: the key is shown once
    cert = ca.issue(device, actor, csr_pem=csr)                 # or the device keeps its key and sends a CSR
    ca.rotate(device, actor, overlap_s=86400)                    # the old certificate is revoked after the overlap
    ca.revoke(device, actor)                                     # on the CRL at once
    ca.suspend(device, True, actor)                              # quarantine: on the CRL as certificateHold
    ca.server("broker", ["127.0.0.1", "mqtt.plant.local"])       # for Mosquitto's listener or uvicorn

A device certificate's subject common name is the device path; with Mosquitto's `use_identity_as_username true`
it becomes the MQTT user name, and the generated ACL lets that user write only under the device's own topic. The
CA key never leaves `<data_dir>/ca/` (mode 0600); the CRL is rewritten, atomically, after every change and at
least every `crl_days / 2`, and the broker is asked to reload it (SIGHUP).

Keys are ECDSA P-256 with SHA-256 signatures (what OPC UA's ECC profiles, Mosquitto's OpenSSL and every
current TLS stack accept); a CSR with an RSA key under 2048 bits or an EC curve under 256 bits is refused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, Field

from plantguard.fsperm import private_dir, write_private
from plantguard.domain.actor import Actor
from plantguard.errors import InvalidInput, NotFound, Unavailable

log = logging.getLogger(__name__)
US = 1_000_000
MAX_CSR_BYTES = 16_384
REASONS = {"unspecified": x509.ReasonFlags.unspecified, "key_compromise": x509.ReasonFlags.key_compromise,
           "superseded": x509.ReasonFlags.superseded, "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
           "certificate_hold": x509.ReasonFlags.certificate_hold}


class CaSettings(BaseModel):
    """`security.ca`: the built-in CA, or your own (give both cert and key)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    cert: str | None = Field(None, description="your own CA certificate (PEM); default: <data_dir>/ca/ca.pem, made on first use")
    key: str | None = Field(None, description="its private key (PEM, unencrypted, mode 0600)")
    name: str = Field("plantguard device CA", min_length=1, max_length=64, description="the built-in CA's common name")
    device_days: int = Field(397, ge=1, le=3650, description="lifetime of a device certificate")
    crl_file: str | None = Field(None, description="where the CRL is written for the broker (default: <data_dir>/ca/crl.pem)")
    crl_days: float = Field(7, ge=0.01, le=365, description="the CRL's validity (nextUpdate); it is renewed at half of it")


@dataclass(frozen=True)
class DeviceCertificate:
    serial: str  # hex
    device: str
    fingerprint: str  # SHA-256 of the DER, hex
    key_type: str
    key_bits: int
    created_at: int
    not_after: int
    expires_at: int | None  # the end of a rotation's overlap
    revoked_at: int | None
    reason: str | None
    suspended: bool

    def active(self, now: int) -> bool:
        return (self.revoked_at is None and not self.suspended and self.not_after > now
                and (self.expires_at is None or self.expires_at > now))


@dataclass(frozen=True)
class Issued:
    serial: str
    device: str
    cert_pem: str
    key_pem: str | None  # None when the device sent a CSR and keeps its key
    not_after: int


def key_strength(public_key) -> tuple[str, int]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ec-{public_key.curve.name}", public_key.curve.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    return type(public_key).__name__, 0


def weak_key(key_type: str, bits: int) -> bool:
    return (key_type == "rsa" and bits < 2048) or (key_type.startswith("ec-") and bits < 256) or bits == 0


def _ts(t: dt.datetime) -> int:
    return int(t.timestamp() * US)


def _dt(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / US, dt.timezone.utc)


class CertificateAuthority:
    def __init__(self, directory: str | Path, store, settings: CaSettings | None = None, *, clock, devices,
                 audit=None, on_change=None) -> None:
        self.dir = Path(directory)
        self.store = store
        self.settings = settings or CaSettings()
        self.clock = clock
        self._devices = devices  # callable -> the device paths of the current model
        self.audit = audit
        self.on_change = on_change or (lambda: None)  # the broker reload
        self._lock = threading.Lock()
        self._ca: tuple[x509.Certificate, object] | None = None
        self.crl_written_at: int | None = None

    # -- the CA itself -----------------------------------------------------------------------------------------
    @property
    def crl_path(self) -> Path:
        return Path(self.settings.crl_file) if self.settings.crl_file else self.dir / "crl.pem"

    @property
    def cert_path(self) -> Path:
        return Path(self.settings.cert) if self.settings.cert else self.dir / "ca.pem"

    def _load(self) -> tuple[x509.Certificate, object]:
        if self._ca is not None:
            return self._ca
        try:
            return self._load_files()
        except InvalidInput:
            raise
        except (OSError, ValueError, TypeError) as e:  # a missing, unreadable or corrupt file: say which, never a 500
            raise Unavailable(f"the certificate authority cannot be loaded ({self.settings.cert or self.dir}): {e}") from None

    def _load_files(self) -> tuple[x509.Certificate, object]:
        s = self.settings
        if s.cert or s.key:
            if not (s.cert and s.key):
                raise InvalidInput("security.ca needs both cert and key for your own CA")
            cert = x509.load_pem_x509_certificate(Path(s.cert).read_bytes())
            key = serialization.load_pem_private_key(Path(s.key).read_bytes(), password=None)
        else:
            cpath, kpath = self.dir / "ca.pem", self.dir / "ca.key"
            if not cpath.exists():
                self._create(cpath, kpath)
            cert = x509.load_pem_x509_certificate(cpath.read_bytes())
            key = serialization.load_pem_private_key(kpath.read_bytes(), password=None)
        self._ca = (cert, key)
        return self._ca

    def _create(self, cpath: Path, kpath: Path) -> None:
        private_dir(self.dir)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _dt(self.clock())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.settings.name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plantguard")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _atomic_write(kpath, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()), 0o600)
        _atomic_write(cpath, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        log.info("created the device certificate authority in %s", self.dir)

    def ca_pem(self) -> str:
        return self._load()[0].public_bytes(serialization.Encoding.PEM).decode()

    # -- issuing -----------------------------------------------------------------------------------------------
    def _sign(self, subject_cn: str, public_key, *, days: float, client: bool, hosts: list[str] = (),
              device: bool = False) -> x509.Certificate:
        ca_cert, ca_key = self._load()
        now = _dt(self.clock())
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
             .issuer_name(ca_cert.subject).public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                          data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False))
        names: list[x509.GeneralName] = []
        if device:
            names.append(x509.UniformResourceIdentifier(f"urn:plantguard:device:{subject_cn}"))
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    def issue(self, device: str, actor: Actor, *, csr_pem: str | bytes | None = None, days: float | None = None) -> Issued:
        """A client certificate for a device of the model. Without a CSR the key pair is made here and returned
        once (it is not kept); with one, the CSR's own signature and key strength are checked."""
        if device not in self._devices():
            raise NotFound(f"no device {device!r} in the plant model")
        _check_cn(device)
        key_pem = None
        if csr_pem is not None:
            public_key = _csr_key(csr_pem)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            public_key = key.public_key()
            key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        with self._lock:
            cert = self._sign(device, public_key, days=days or self.settings.device_days, client=True, device=True)
            kt, bits = key_strength(public_key)
            serial = format(cert.serial_number, "x")
            pem = cert.public_bytes(serialization.Encoding.PEM).decode()
            self.store.execute([(
                "INSERT INTO device_certificates (serial, device, fingerprint, key_type, key_bits, created_at, not_after, "
                "expires_at, revoked_at, reason, suspended, pem) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, FALSE, ?)",
                (serial, device, cert.fingerprint(hashes.SHA256()).hex(), kt, bits, self.clock(),
                 _ts(cert.not_valid_after_utc), pem))])
        self._record(actor, "device.certificate.issue", device, serial=serial, csr=csr_pem is not None)
        self.apply()
        return Issued(serial, device, pem, key_pem, _ts(cert.not_valid_after_utc))

    def rotate(self, device: str, actor: Actor, *, overlap_s: float = 86400, csr_pem: str | bytes | None = None) -> Issued:
        """A new certificate; the device's other live ones go on the CRL (superseded) when the overlap ends."""
        until = self.clock() + int(overlap_s * US)
        issued = self.issue(device, actor, csr_pem=csr_pem)
        self.store.execute([("UPDATE device_certificates SET expires_at = ? WHERE device = ? AND serial <> ? AND revoked_at IS NULL "
                             "AND (expires_at IS NULL OR expires_at > ?)", (until, device, issued.serial, until))])
        self._record(actor, "device.certificate.rotate", device, serial=issued.serial, overlap_s=overlap_s)
        self.apply()
        return issued

    def revoke(self, device: str, actor: Actor, *, serial: str | None = None, reason: str = "unspecified") -> int:
        if reason not in REASONS or reason == "certificate_hold":
            raise InvalidInput(f"reason must be one of {', '.join(r for r in REASONS if r != 'certificate_hold')}")
        live = [c for c in self.certificates(device) if c.revoked_at is None and (serial is None or c.serial == serial)]
        if not live:
            raise NotFound(f"device {device!r} has no certificate to revoke" + (f" with serial {serial}" if serial else ""))
        now = self.clock()
        self.store.execute([("UPDATE device_certificates SET revoked_at = ?, reason = ? WHERE serial = ?", (now, reason, c.serial))
                            for c in live])
        self._record(actor, "device.certificate.revoke", device, serials=[c.serial for c in live], reason=reason)
        self.apply()
        return len(live)

    def suspend(self, device: str, suspended: bool, actor: Actor) -> int:
        """Quarantine: the device's certificates are put on hold (on the CRL, reason certificateHold) or released."""
        rows = [c for c in self.certificates(device) if c.revoked_at is None]
        if not rows:
            return 0
        self.store.execute([("UPDATE device_certificates SET suspended = ? WHERE device = ? AND revoked_at IS NULL",
                             (bool(suspended), device))])
        self._record(actor, "device.certificate.hold" if suspended else "device.certificate.release", device,
                     serials=[c.serial for c in rows])
        self.apply()
        return len(rows)

    def server(self, name: str, hosts: list[str], *, days: float = 825) -> tuple[str, str]:
        """(certificate PEM, key PEM) for a TLS server (the broker's listener, the API) under the given names."""
        if not hosts:
            raise InvalidInput("a server certificate needs at least one host name or address")
        return self._keyed(name, days=days, client=False, hosts=hosts)

    def client(self, name: str, *, days: float = 825) -> tuple[str, str]:
        """(certificate PEM, key PEM) for a client that is not a device of the model: plantguard's own ingest
        client on the broker's TLS listener, whose user name is `name`."""
        _check_cn(name)
        return self._keyed(name, days=days, client=True, hosts=[])

    def _keyed(self, name: str, *, days: float, client: bool, hosts: list[str]) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        with self._lock:
            cert = self._sign(name, key.public_key(), days=days, client=client, hosts=hosts)
        return (cert.public_bytes(serialization.Encoding.PEM).decode(),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())

    # -- reading -----------------------------------------------------------------------------------------------
    def certificates(self, device: str | None = None) -> list[DeviceCertificate]:
        sql = ("SELECT serial, device, fingerprint, key_type, key_bits, created_at, not_after, expires_at, revoked_at, reason, "
               "suspended FROM device_certificates")
        rows = self.store.fetch(sql + (" WHERE device = ?" if device else "") + " ORDER BY created_at, serial",
                                (device,) if device else ())
        return [DeviceCertificate(s, d, f, kt, int(kb), int(c), int(na), e, r, rs, bool(su))
                for s, d, f, kt, kb, c, na, e, r, rs, su in rows]

    def pem(self, serial: str) -> str:
        rows = self.store.fetch("SELECT pem FROM device_certificates WHERE serial = ?", (serial,))
        if not rows:
            raise NotFound(f"no certificate {serial!r}")
        return rows[0][0]

    def active_devices(self) -> set[str]:
        now = self.clock()
        return {c.device for c in self.certificates() if c.active(now)}

    # -- the CRL -----------------------------------------------------------------------------------------------
    def crl(self) -> x509.CertificateRevocationList:
        """Revoked, held (suspended) and superseded-after-overlap certificates that have not yet expired."""
        ca_cert, ca_key = self._load()
        now = self.clock()
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject).last_update(_dt(now) - dt.timedelta(minutes=5))
             .next_update(_dt(now) + dt.timedelta(days=self.settings.crl_days)))
        for c in self.certificates():
            if c.not_after <= now:
                continue  # an expired certificate is refused anyway
            if c.revoked_at is not None:
                when, reason = c.revoked_at, c.reason or "unspecified"
            elif c.suspended:
                when, reason = now, "certificate_hold"
            elif c.expires_at is not None and c.expires_at <= now:
                when, reason = c.expires_at, "superseded"
            else:
                continue
            entry = x509.RevokedCertificateBuilder().serial_number(int(c.serial, 16)).revocation_date(_dt(when))
            if reason != "unspecified":
                entry = entry.add_extension(x509.CRLReason(REASONS[reason]), critical=False)
            b = b.add_revoked_certificate(entry.build())
        return b.sign(ca_key, hashes.SHA256())

    def apply(self) -> None:
        """Writes the CRL (atomically) and asks the broker to reload it."""
        with self._lock:
            pem = self.crl().public_bytes(serialization.Encoding.PEM)
            _atomic_write(self.crl_path, pem, 0o644)
            self.crl_written_at = self.clock()
        try:
            self.on_change()
        except Exception:  # noqa: BLE001 - the CRL is written; the broker is told on the next change or tick
            log.exception("could not ask the broker to reload after a certificate change")

    def on_tick(self, now: int) -> None:
        """Renews the CRL at half its validity, and when a rotation's overlap has ended."""
        due = self.crl_written_at is None or now - self.crl_written_at > self.settings.crl_days * 86400 * US / 2
        if not due:
            ended = self.store.fetch("SELECT COUNT(*) FROM device_certificates WHERE revoked_at IS NULL AND expires_at IS NOT NULL "
                                     "AND expires_at <= ? AND expires_at > ?", (now, self.crl_written_at or 0))
            due = bool(ended and ended[0][0])
        if due and (self.store.fetch("SELECT COUNT(*) FROM device_certificates")[0][0] or self.crl_path.exists()):
            self.apply()

    def _record(self, actor, action: str, target: str, **detail) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, "ok", detail)


def verify_chain(cert_pem: str | bytes, ca_pem: str | bytes, crl: x509.CertificateRevocationList | None = None,
                 *, at_us: int) -> str | None:
    """Why a client certificate would be refused (None: accepted): the checks a TLS server makes, for the API."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem.encode() if isinstance(ca_pem, str) else ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception) as e:  # noqa: BLE001 - InvalidSignature and friends: refused
        return f"not issued by this CA ({type(e).__name__})"
    at = _dt(at_us)
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        return "outside its validity"
    if crl is not None and crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        return "revoked"
    return None


def _csr_key(csr_pem: str | bytes):
    data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
    if len(data) > MAX_CSR_BYTES:
        raise InvalidInput(f"a CSR is at most {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise InvalidInput(f"not a PEM certificate signing request: {e}") from None
    if not csr.is_signature_valid:
        raise InvalidInput("the CSR's signature does not match its key")
    key = csr.public_key()
    kt, bits = key_strength(key)
    if weak_key(kt, bits) or not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise InvalidInput(f"the CSR's key is too weak ({kt}, {bits} bits): RSA 2048+ or EC P-256+")
    return key


def _check_cn(name: str) -> None:
    # the common name becomes the broker user name: one line per user in the ACL file
    if any(c in name for c in "\n\r\t :"):
        raise InvalidInput(f"a device path used as a certificate name may not contain spaces, ':' or line breaks: {name!r}")
    if len(name) > 64:  # X.509's upper bound for a common name (RFC 5280 ub-common-name)
        raise InvalidInput(f"a certificate's common name is at most 64 characters; device path {name!r} has {len(name)}: "
                           "use a token credential, or shorter ids")


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    write_private(path, data, mode=mode)
