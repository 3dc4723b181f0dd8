"""Who did something: every command (a model edit, an alarm acknowledged or shelved, a write to a device, a
gateway registration) carries an Actor, and the change is recorded with it.

    Actor.user("alice")        # an operator or engineer
    Actor.cli()                # a command on this machine: the OS user
    Actor.system("analytics")  # the platform itself
    str(actor) == "user:alice"; Actor.parse("token:ci-bot")

Until authentication exists the API takes the name from the request and the CLI uses the OS user; the recorded
form "kind:name" says which of those it was.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from enum import Enum

from plantguard.errors import InvalidInput

MAX_NAME = 200


class ActorKind(str, Enum):
    user = "user"
    token = "token"
    device = "device"
    system = "system"
    cli = "cli"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ActorKind):
            object.__setattr__(self, "kind", ActorKind(self.kind))
        name = self.name.strip() if isinstance(self.name, str) else ""
        if not name:
            raise InvalidInput("the actor's name is required (who does this?)")
        if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            raise InvalidInput(f"an actor's name is at most {MAX_NAME} printable characters")
        object.__setattr__(self, "name", name)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"

    @classmethod
    def user(cls, name: str) -> Actor:
        return cls(ActorKind.user, name)

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(ActorKind.system, component)

    @classmethod
    def cli(cls) -> Actor:
        try:
            name = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user database entry (a container): still someone at this machine
            name = "unknown"
        return cls(ActorKind.cli, name)

    @classmethod
    def parse(cls, text: str) -> Actor:
        """The recorded form back; a bare name (recorded before actors had kinds) is a user."""
        kind, sep, name = text.partition(":")
        if sep and kind in ActorKind.__members__:
            return cls(ActorKind(kind), name)
        return cls.user(text)

    @classmethod
    def of(cls, who: Actor | str) -> Actor:
        """An Actor as given, or a user of that name."""
        return who if isinstance(who, Actor) else cls.user(who)
