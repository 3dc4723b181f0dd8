"""Password hashes (argon2id, argon2-cffi's RFC 9106 low-memory profile) and the rules a new password meets.

A weak or placeholder password is refused when it is set, with the reason: at least 12 characters, not one of
the passwords attackers try first, not the user name, not a single repeated character."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; a bound keeps a hostile megabyte password from costing CPU
_hasher = argon2.PasswordHasher.from_parameters(argon2.profiles.RFC_9106_LOW_MEMORY)

# The first ones tried by every brute-force list, and the placeholders people leave in config files.
COMMON = frozenset("""
password passw0rd password1 password12 password123 123456789012 1234567890123 qwertyuiopas qwerty123456
administrator admin123456 adminadmin12 changeme1234 changemeplease letmein12345 welcome12345 iloveyou1234
secret123456 default12345 plantguard12 plantguard123 placeholder1 yourpassword mypassword12 passwordpassword
""".split())
PLACEHOLDERS = ("changeme", "change-me", "change_me", "replace-me", "replaceme", "example", "placeholder", "secret",
                "password", "xxxx", "todo", "fixme")


def password_problem(password: str, user: str = "") -> str | None:
    """Why this password may not be used, or None."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return f"a password has at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    low = password.lower()
    if low in COMMON or any(low.startswith(p) and not any(c.isalpha() for c in low[len(p):]) for p in PLACEHOLDERS):
        return "this password is on the lists attackers try first, or a placeholder"
    if len(set(password)) <= 2:
        return "a password is not a repeated character"
    if user and user.lower() in low:
        return "a password does not contain the user name"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    if not isinstance(password, str) or len(password) > MAX_LENGTH or not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


# A hash of nothing anybody knows: verified against when the user does not exist, so that a login for an unknown
# name costs the same time as one for a known name (no user enumeration by timing).
DUMMY_HASH = _hasher.hash("no user has this password: " + "x" * 16)
