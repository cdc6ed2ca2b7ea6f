"""The API's one error body, documented once for every operation."""

from ninja import Schema


class ErrorOut(Schema):
    """Every error the API answers: a stable code, what went wrong and what to do, and details."""

    error: str
    detail: str


class ConflictOut(ErrorOut):
    """A move refused in the current state: where the lead is and what it may do instead."""

    stage: str
    status: str
    allowed_moves: list[str]


ERRORS = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut, 429: ErrorOut}
