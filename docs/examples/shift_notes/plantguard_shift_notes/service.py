"""Notes operators leave for the next shift, per line. Writing one is recorded in the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from plantguard.domain.actor import Actor
from plantguard.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Note:
    id: int
    line: str
    at_us: int
    author: str
    text: str


class ShiftNotes:
    def __init__(self, store, settings, *, clock, index, audit) -> None:
        self._store, self.settings, self._clock, self._index, self._audit = store, settings, clock, index, audit

    def add(self, line: str, text: str, actor: Actor) -> Note:
        if self._index().line(line) is None:
            raise NotFound(f"no line {line!r} in the plant model")
        text = text.strip()
        if not text or len(text) > self.settings.max_length:
            raise InvalidInput(f"a note has 1 to {self.settings.max_length} characters")
        last = self._store.fetch("SELECT max(id) FROM shift_notes")[0][0]
        note = Note(int(last or 0) + 1, line, self._clock(), str(actor), text)
        self._store.execute([("INSERT INTO shift_notes (id, line, at_us, author, text) VALUES (?, ?, ?, ?, ?)",
                              (note.id, note.line, note.at_us, note.author, note.text))])
        self._audit.record(str(actor), "shift_notes.add", line, detail={"id": note.id})
        return note

    def list(self, line: str, limit: int = 50) -> list[Note]:
        rows = self._store.fetch("SELECT id, line, at_us, author, text FROM shift_notes WHERE line = ? "
                                 "ORDER BY id DESC LIMIT ?", (line, max(1, min(int(limit), 1000))))
        return [Note(*r) for r in rows]
