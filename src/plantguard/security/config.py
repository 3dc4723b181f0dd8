"""The `security:` section (owned by the security capability)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plantguard.security.behaviour import BehaviourSettings
from plantguard.security.broker import BrokerSettings
from plantguard.security.ca import CaSettings
from plantguard.security.writes import WriteWindow
from plantguard.domain.roles import Role


class SecuritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    session_idle: float = Field(1800, ge=60, le=7 * 86400, description="a dashboard session ends after this many seconds without a request")
    session_max: float = Field(43200, ge=300, le=30 * 86400, description="and at the latest this many seconds after login")
    mfa_roles: list[Role] = Field(default_factory=list, description="roles that must use a TOTP second factor (IEC 62443 SL3: engineer, admin)")
    login_max_failures: int = Field(5, ge=1, le=1000, description="failed logins per user name, then it is locked for login_lockout")
    login_max_failures_per_address: int = Field(20, ge=1, le=100000, description="failed logins per client address, then it is locked")
    login_window: float = Field(900, ge=1, le=86400, description="seconds over which failed logins are counted")
    login_lockout: float = Field(900, ge=1, le=86400, description="seconds a locked user or address waits")
    token_max_days: int = Field(365, ge=1, le=3650, description="longest lifetime of an API token")
    audit_checkpoint_every: float = Field(60, ge=1, le=86400, description="seconds between signed audit checkpoints")
    risk_record_every: float = Field(3600, ge=10, le=7 * 86400, description="seconds between the background runs of the posture audit that record the risk history and the identities first seen (reading the register or the findings records nothing)")
    audit_witness: str | None = Field(None, description="file the audit log's leaves and signed checkpoints go to (default: <data_dir>/audit/witness.jsonl; put it on another disk)")
    audit_syslog: str | None = Field(None, max_length=300, description="also send every signed checkpoint to syslog: udp://host:514, tcp://host:601 or unix:///dev/log")
    audit_syslog_facility: str = Field("authpriv", description="the syslog facility: auth, authpriv, local0..local7")

    @field_validator("audit_syslog")
    @classmethod
    def _syslog(cls, v: str | None) -> str | None:
        if v is not None:
            from plantguard.security.audit import SyslogExporter

            SyslogExporter(v)  # raises ValueError with the accepted forms
        return v

    @field_validator("audit_syslog_facility")
    @classmethod
    def _facility(cls, v: str) -> str:
        from plantguard.security.audit import SyslogExporter

        if v not in SyslogExporter.FACILITIES:
            raise ValueError(f"one of {', '.join(SyslogExporter.FACILITIES)}")
        return v

    audit_key: str | None = Field(None, description="the audit signing key (default: <data_dir>/audit/signing.key)")
    @field_validator("quarantine_on")
    @classmethod
    def _rules_known(cls, v: list[str]) -> list[str]:
        from plantguard.security.behaviour import RULES

        bad = [r for r in v if r not in RULES]
        if bad:
            raise ValueError(f"unknown rule(s) {', '.join(bad)} (rules: {', '.join(RULES)})")
        return v

    broker: BrokerSettings | None = Field(None, description="generate the MQTT broker's password and ACL files from the device inventory")
    ca: CaSettings = Field(default_factory=CaSettings, description="the certificate authority of device and server certificates")
    behaviour: BehaviourSettings = Field(default_factory=BehaviourSettings, description="behavioural detection per device")
    quarantine_on: list[str] = Field(default_factory=list, description="behavioural rules whose events quarantine the device at once (default: none, quarantine by hand)")
    write_windows: list[WriteWindow] = Field(default_factory=list, max_length=1000,
                                             description="when writes to devices are allowed (default: always, for devices no window covers)")
    advisories_dir: str | None = Field(None, description="directory of CSAF 2.0 advisories (each *.json with its .sha512) the posture audit matches")
    credential_max_age_days: float = Field(365, gt=0, le=36500, description="a device credential older than this is reported as never rotated")
    silent_min_s: float = Field(3600, gt=0, le=86400 * 365, description="a device is reported silent after max(10 periods, this) without a reading")

