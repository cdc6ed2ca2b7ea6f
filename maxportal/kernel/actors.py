"""Who makes a change: an Eidolon (optionally one of its agents) with a token, a person, or the
portal itself (the worker, the reaper, beat). Every service takes one and the audit trails record
its ``label``. An Eidolon's queries are scoped by it; staff see everything."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    user: object | None = None
    eidolon: object | None = None
    agent: object | None = None
    token: object | None = None
    via: str = ""  # the interface a person used: "page", "admin", "api", a command
    system: str = ""  # the portal's own name for itself ("celery worker", "reaper (time limit)")

    @classmethod
    def for_user(cls, user, via: str = "") -> Actor:
        return cls(user=user, via=via)

    @classmethod
    def for_token(cls, token) -> Actor:
        return cls(eidolon=token.eidolon, agent=token.agent, token=token)

    @classmethod
    def for_system(cls, name: str, user=None) -> Actor:
        """The portal acting on its own (or on behalf of ``user``, who started it)."""
        return cls(user=user, system=name)

    @property
    def is_staff(self) -> bool:
        return bool(self.user is not None and self.user.is_active and self.user.is_staff and not self.system)

    @property
    def label(self) -> str:
        if self.system:
            return self.system
        if self.user is not None:
            name = self.user.get_username()
            return f"{name} ({self.via})" if self.via else name
        if self.eidolon is not None:
            return f"{self.eidolon.name}/{self.agent.kind}" if self.agent is not None else str(self.eidolon.name)
        return "unknown"

    @property
    def sender(self) -> str:
        """How signals name this actor as their sender."""
        if self.system:
            return self.system
        return self.user.get_username() if self.user is not None else self.eidolon.name


ENGINE = Actor.for_system("celery worker")
REAPER = Actor.for_system("reaper (time limit)")
