"""Roles and the permissions they grant. Deny by default: a route or page names the one permission it needs
(api/permissions.py), and a role grants only what it lists.

    viewer    sees the plant: model, telemetry, alarms, analytics, the dashboard
    operator  + acknowledges and shelves alarms, responds to incidents, keeps the improvement backlog
    engineer  + edits the plant model, sends readings, reads security findings and the audit log, runs playbooks,
                records maturity assessments, attestations and training, runs rollout gates and promotes phases
    admin     + manages users and tokens, quarantines and releases devices, edits the dependency graph
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from plantguard.domain.actor import Actor


class Permission(str, Enum):
    PUBLIC = "public"                    # health, the login page: no credential at all
    READ = "read"
    ALARMS_OPERATE = "alarms.operate"
    MODEL_WRITE = "model.write"
    INGEST = "ingest"                    # devices, scripts and gateways sending readings
    SECURITY_READ = "security.read"
    SECURITY_OPERATE = "security.operate"
    AUDIT_READ = "audit.read"
    USERS_MANAGE = "users.manage"
    INCIDENTS_RESPOND = "incidents.respond"    # acknowledge, assign, mitigate, resolve, review an incident
    PLAYBOOKS_RUN = "playbooks.run"            # start, approve (as the step's role allows) and cancel playbook runs
    CONTINUITY_EDIT = "continuity.edit"        # the dependency graph and business impact analysis
    IMPROVEMENT_EDIT = "improvement.edit"      # add and update improvement actions
    MATURITY_ASSESS = "maturity.assess"        # record assessments, attestations, training; run rollout gates and promotions


class Role(str, Enum):
    viewer = "viewer"
    operator = "operator"
    engineer = "engineer"
    admin = "admin"


_VIEWER = frozenset({Permission.READ})
_OPERATOR = _VIEWER | {Permission.ALARMS_OPERATE, Permission.INCIDENTS_RESPOND, Permission.IMPROVEMENT_EDIT}
_ENGINEER = _OPERATOR | {Permission.MODEL_WRITE, Permission.INGEST, Permission.SECURITY_READ, Permission.AUDIT_READ,
                         Permission.PLAYBOOKS_RUN, Permission.MATURITY_ASSESS}
_ADMIN = frozenset(Permission) - {Permission.PUBLIC}

GRANTS: dict[Role, frozenset[Permission]] = {Role.viewer: _VIEWER, Role.operator: _OPERATOR,
                                             Role.engineer: _ENGINEER, Role.admin: _ADMIN}


def grants(role: Role | str) -> frozenset[Permission]:
    return GRANTS[Role(role)]


def parse_scopes(scopes: list[str] | tuple[str, ...] | None, role: Role | str) -> frozenset[Permission]:
    """A token's permissions: the scopes it was given, never more than its owner's role grants."""
    allowed = grants(role)
    if not scopes:
        return allowed
    wanted = {Permission(s) for s in scopes}
    if not wanted <= allowed:
        extra = ", ".join(sorted(p.value for p in wanted - allowed))
        raise ValueError(f"a {Role(role).value} cannot grant {extra}")
    return frozenset(wanted)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, and what they may do."""

    actor: Actor
    role: Role | None
    permissions: frozenset[Permission]
    via: str  # session, token, none
    csrf: str | None = None  # a session's CSRF token (state-changing requests must echo it)
    device: str | None = None
    session_hash: str | None = None

    def can(self, p: Permission) -> bool:
        return p is Permission.PUBLIC or p in self.permissions

    @property
    def name(self) -> str:
        return self.actor.name


ANONYMOUS = Principal(Actor.system("anonymous"), None, frozenset(), "none")
