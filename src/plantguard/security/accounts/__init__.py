"""Users, API tokens, dashboard sessions and one-time login links, kept in the store (tables of the security
capability), and the login rules: argon2id passwords, an optional TOTP second factor (required for the roles
in `security.mfa_roles`), failures counted per user name and per client address with a lockout.

Secrets are never stored: a token or a session id is `pg?_<random>`, and the store keeps its SHA-256. Tokens
and sessions are looked up by that hash; comparisons of secrets use constant time.
"""

from __future__ import annotations

from plantguard.domain.roles import ANONYMOUS, Principal  # noqa: F401 - ANONYMOUS: what a check without credential yields
from plantguard.security.accounts._base import TOKEN_RE, AccountsBase, TokenInfo, User  # noqa: F401 - the records
from plantguard.security.accounts.second_factor import SecondFactor
from plantguard.security.accounts.sessions import Sessions
from plantguard.security.accounts.tokens import Tokens
from plantguard.security.accounts.users import Users


class Accounts(Users, SecondFactor, Sessions, Tokens, AccountsBase):
    """One object over the security tables; each part is one job: users and passwords (users.py), the second
    factor (second_factor.py), logins, lockout, sessions and links (sessions.py), tokens (tokens.py)."""
