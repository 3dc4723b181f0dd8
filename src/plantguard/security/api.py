"""The device posture audit, its triage, and per-device broker credentials. Thin: plantguard.security."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from plantguard.api.deps import ActorDep, ServicesDep
from plantguard.api.errors import ERROR_RESPONSES
from plantguard.api.permissions import require
from plantguard.errors import Unavailable
from plantguard.security.posture import SEVERITIES, Finding
from plantguard.services import Services
from plantguard.domain.roles import Permission

router = APIRouter(prefix="/security", tags=["security"])
READ = [require(Permission.SECURITY_READ)]
OPERATE = [require(Permission.SECURITY_OPERATE)]
DevicePath = Annotated[str, Path(description="site/area/line/asset/device", max_length=512)]


class ReportPublic(BaseModel):
    at: int
    devices: int
    advisories: int
    advisory_problems: list[str]
    by_severity: dict[str, int]
    findings: list[Finding]


class TriageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    check: str = Field(max_length=100, description="a check id, or 'advisory' for the advisory matches of the device")
    device: str = Field(max_length=512)
    decision: Literal["mute", "accept", "reopen"]
    reason: str = Field("", max_length=500)


class CredentialPublic(BaseModel):
    device: str
    username: str
    password: str | None = Field(None, description="shown once, when issued")


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_s: float = Field(86400, ge=0, le=90 * 86400, description="how long the old keys keep working")


def _svc(svc: Services, name: str):
    out = svc.of(name)
    if out is None:
        raise Unavailable("security is not set up on this platform")
    return out


def _report(r) -> dict:
    return {"at": r.at, "devices": r.devices, "advisories": r.advisories, "advisory_problems": r.advisory_problems,
            "by_severity": r.by_severity(), "findings": [asdict(f) for f in r.findings]}


@router.get("/findings", response_model=ReportPublic, dependencies=READ)
def findings(svc: ServicesDep, severity: Annotated[Literal[SEVERITIES] | None, Query(description="only findings of this severity")] = None,
             device: Annotated[str | None, Query(max_length=512, description="only devices under this path")] = None) -> Any:
    """The posture audit of every device now (muted and accepted findings left out)."""
    out = _report(_svc(svc, "posture").run())
    out["findings"] = [f for f in out["findings"] if (severity is None or f["severity"] == severity)
                       and (device is None or f["device"].startswith(device))]
    return out


@router.post("/audit", response_model=ReportPublic, dependencies=OPERATE)
def run_audit(svc: ServicesDep, actor: ActorDep) -> Any:
    """Runs the posture audit and records it: the run (who, how many findings) in the audit log, the identities
    seen for the first time, and each changed risk score in the register's history."""
    report = _svc(svc, "posture").run(actor)
    _svc(svc, "risks").record(report)
    return _report(report)


@router.post("/triage", status_code=204, dependencies=OPERATE, responses=ERROR_RESPONSES)
def triage(body: TriageBody, svc: ServicesDep, actor: ActorDep) -> None:
    """Mutes (noise) or accepts (a known risk) one finding of a device, with a reason; reopen undoes it."""
    _svc(svc, "posture").decide(body.check, body.device, body.decision, body.reason, actor)


@router.post("/devices/{device:path}/credentials", response_model=CredentialPublic, status_code=201, dependencies=OPERATE,
             responses=ERROR_RESPONSES)
def issue_credential(device: DevicePath, svc: ServicesDep, actor: ActorDep) -> Any:
    """A new broker credential for the device (it may publish only under its own topic); the password is shown once."""
    user, pw = _svc(svc, "broker_credentials").issue(device, actor)
    return {"device": device, "username": user, "password": pw}


@router.post("/devices/{device:path}/credentials/rotate", response_model=CredentialPublic, status_code=201, dependencies=OPERATE,
             responses=ERROR_RESPONSES)
def rotate_credential(device: DevicePath, body: RotateBody, svc: ServicesDep, actor: ActorDep) -> Any:
    user, pw = _svc(svc, "broker_credentials").rotate(device, actor, body.overlap_s)
    return {"device": device, "username": user, "password": pw}


@router.delete("/devices/{device:path}/credentials", dependencies=OPERATE, responses=ERROR_RESPONSES)
def revoke_credentials(device: DevicePath, svc: ServicesDep, actor: ActorDep) -> Any:
    """Revokes every broker credential of the device (the broker reloads its files at once)."""
    return {"device": device, "revoked": _svc(svc, "broker_credentials").revoke(device, actor)}


class CertificateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csr: str | None = Field(None, max_length=16_384, description="a PEM certificate signing request: the device keeps its key "
                            "(default: a key pair is made here and its key returned once)")
    days: int | None = Field(None, ge=1, le=3650, description="lifetime (default: security.ca.device_days)")


class CertificateRotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csr: str | None = Field(None, max_length=16_384)
    overlap_s: float = Field(86400, ge=0, le=90 * 86400, description="how long the old certificates keep working")


class IssuedPublic(BaseModel):
    serial: str
    device: str
    cert_pem: str
    key_pem: str | None = Field(None, description="shown once, when the key pair was made here")
    not_after: int


class CertificatePublic(BaseModel):
    serial: str
    device: str
    fingerprint: str
    key_type: str
    key_bits: int
    created_at: int
    not_after: int
    expires_at: int | None
    revoked_at: int | None
    reason: str | None
    suspended: bool


@router.get("/ca.pem", dependencies=READ, response_class=PlainTextResponse, responses={200: {"content": {"application/x-pem-file": {}}}})
def ca_certificate(svc: ServicesDep) -> Any:
    """The CA certificate devices and clients trust (public)."""
    return PlainTextResponse(_svc(svc, "ca").ca_pem(), media_type="application/x-pem-file")


@router.get("/crl.pem", dependencies=READ, response_class=PlainTextResponse, responses={200: {"content": {"application/x-pem-file": {}}}})
def crl(svc: ServicesDep) -> Any:
    """The current certificate revocation list (revoked, held and superseded certificates)."""
    from cryptography.hazmat.primitives import serialization

    return PlainTextResponse(_svc(svc, "ca").crl().public_bytes(serialization.Encoding.PEM).decode(),
                             media_type="application/x-pem-file")


@router.get("/devices/{device:path}/certificates", response_model=list[CertificatePublic], dependencies=READ)
def list_certificates(device: DevicePath, svc: ServicesDep) -> Any:
    return [asdict(c) for c in _svc(svc, "ca").certificates(device)]


@router.post("/devices/{device:path}/certificates", response_model=IssuedPublic, status_code=201, dependencies=OPERATE,
             responses=ERROR_RESPONSES)
def issue_certificate(device: DevicePath, body: CertificateBody, svc: ServicesDep, actor: ActorDep) -> Any:
    """An X.509 client certificate from the built-in CA (common name = the device path: on the broker's TLS listener
    it may publish only under its own topic)."""
    return asdict(_svc(svc, "ca").issue(device, actor, csr_pem=body.csr, days=body.days))


@router.post("/devices/{device:path}/certificates/rotate", response_model=IssuedPublic, status_code=201, dependencies=OPERATE,
             responses=ERROR_RESPONSES)
def rotate_certificate(device: DevicePath, body: CertificateRotateBody, svc: ServicesDep, actor: ActorDep) -> Any:
    """A new certificate; the device's other ones go on the CRL when the overlap ends."""
    return asdict(_svc(svc, "ca").rotate(device, actor, overlap_s=body.overlap_s, csr_pem=body.csr))


@router.delete("/devices/{device:path}/certificates", dependencies=OPERATE, responses=ERROR_RESPONSES)
def revoke_certificates(device: DevicePath, svc: ServicesDep, actor: ActorDep,
                        serial: Annotated[str | None, Query(max_length=64, pattern="^[0-9a-f]+$")] = None,
                        reason: Annotated[Literal["unspecified", "key_compromise", "superseded", "cessation_of_operation"],
                                          Query()] = "unspecified") -> Any:
    """Revokes the device's certificates (or one, by serial): on the CRL at once, the broker reloads it."""
    return {"device": device, "revoked": _svc(svc, "ca").revoke(device, actor, serial=serial, reason=reason)}


def _risk_public():
    """The register's JSON form: the fields of RiskEntry (declared once, in security/risk.py) and its trend."""
    from dataclasses import fields
    from typing import get_type_hints

    from pydantic import create_model

    from plantguard.security.risk import RiskEntry

    hints = get_type_hints(RiskEntry)
    return create_model("RiskPublic", **{f.name: (hints[f.name], ...) for f in fields(RiskEntry)}, trend=(str, ...))


RiskPublic = _risk_public()


def _risk(e) -> dict:
    return {**asdict(e), "trend": e.trend}


@router.get("/risks", response_model=list[RiskPublic], dependencies=READ,
            responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}})
def risks(svc: ServicesDep, format: Annotated[Literal["json", "csv"], Query()] = "json",
          limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> Any:
    """The risk register (likelihood x impact per device), highest first, computed now; each entry's `previous` is
    the score last recorded (the platform records the register in the background: reading it writes nothing)."""
    from fastapi.responses import Response

    from plantguard.security.risk import to_csv

    entries = _svc(svc, "risks").register()[:limit]
    if format == "csv":
        return Response(to_csv(entries), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="plantguard-risks.csv"'})
    return [_risk(e) for e in entries]


class RiskPoint(BaseModel):
    at: int
    likelihood: float
    impact: float
    score: float


@router.get("/risks/{device:path}/history", response_model=list[RiskPoint], dependencies=READ)
def risk_history(device: DevicePath, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> Any:
    """A device's score each time it changed, newest first."""
    return [{"at": a, "likelihood": lk, "impact": im, "score": sc} for a, lk, im, sc in _svc(svc, "risks").history(device, limit)]


class SecurityEventPublic(BaseModel):
    device: str
    rule: str
    at: int
    message: str
    evidence: dict


@router.get("/events", response_model=list[SecurityEventPublic], dependencies=READ)
def security_events(svc: ServicesDep, device: Annotated[str | None, Query(max_length=512)] = None,
                    rule: Annotated[str | None, Query(max_length=100)] = None,
                    since: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Any:
    """Behavioural security events, newest first, each with the readings that triggered it."""
    return [asdict(e) for e in _svc(svc, "posture").events(device=device, rule=rule, since=since, limit=limit)]


class QuarantineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)
    disposition: Literal["admit", "discard"] = Field(description="admit: the held readings go through the pipeline; discard: they are deleted")


@router.get("/quarantine", dependencies=READ)
def quarantined(svc: ServicesDep) -> Any:
    """Quarantined devices with who set them aside, why, and how many readings are held."""
    return [asdict(r) for r in _svc(svc, "quarantine").list()]


@router.post("/quarantine/{device:path}/release", dependencies=OPERATE, responses=ERROR_RESPONSES)
def release(device: DevicePath, body: ReleaseBody, svc: ServicesDep, actor: ActorDep) -> Any:
    """Four eyes: a user other than the one who quarantined the device releases it, admitting or discarding what
    was held."""
    return _svc(svc, "quarantine").release(device, actor, body.reason, body.disposition)


@router.post("/quarantine/{device:path}", status_code=201, dependencies=OPERATE, responses=ERROR_RESPONSES)
def quarantine(device: DevicePath, body: QuarantineBody, svc: ServicesDep, actor: ActorDep) -> Any:
    """Sets a device aside: its readings are kept in the quarantine store, out of the main store and analytics;
    its broker credentials are suspended."""
    return asdict(_svc(svc, "quarantine").quarantine(device, actor, body.reason))
