"""Small text helpers shared by every app."""

TAIL_CHARS = 4000


def tail(text: str | None, limit: int = TAIL_CHARS) -> str:
    """The last ``limit`` characters of ``text`` (output kept on a step, a log shown on a page)."""
    return (text or "")[-limit:]
