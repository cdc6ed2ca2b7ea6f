"""The API's one error body and the input rules every app's schemas share, documented once.

Every error the API answers, whatever raised it (a service, request validation, authentication,
routing, the size limit, the rate limit, an exhausted connection pool), has the body ``ErrorOut``:
``{"error": <stable code>, "detail": <what went wrong and what to do>, ...details}``. The API root
(maxportal/api.py) builds it in one place and documents it on every operation.
"""

from typing import Annotated

from ninja import Field, Schema
from ninja.schema import DjangoGetter
from pydantic import StringConstraints, model_validator

# Text the database can store: PostgreSQL refuses NUL in a string, so the schema says so and
# request validation refuses it (422 invalid) before any service runs.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]

# A database id in a path: a number the database can hold (larger ones are refused, not a 500).
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]

# Every list endpoint: ``limit`` above this answers 422 (never clamped silently).
PAGE_LIMIT_MAX = 200


class BodyIn(Schema):
    """A JSON request body: an object. django-ninja's schemas read attributes, so without this check a
    list, a number or null would pass as "no fields given" on a body whose fields are all optional."""

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value):
        # django-ninja's own wrap validator hands on the value wrapped in a DjangoGetter.
        if not isinstance(value._obj if isinstance(value, DjangoGetter) else value, dict):
            raise ValueError("the body must be a JSON object")
        return value


class ErrorOut(Schema):
    """Every error the API answers: a stable code, what went wrong and what to do, and details."""

    error: str = Field(..., description="A stable code, e.g. invalid, not_authenticated, not_found, conflict, "
                                        "rate_limited, unavailable.")
    detail: str = Field(..., description="What went wrong and what to do, in a sentence.")
    fields: dict[str, list[str]] | None = Field(
        None, description="For error 'invalid': each refused field (dotted path) and what is wrong with it."
    )
    field: str | None = Field(None, description="The one field the error is about, when there is one.")
    retry_after: int | None = Field(None, description="For 429 and 503: seconds to wait (also the Retry-After "
                                                      "header).")


class ConflictOut(ErrorOut):
    """A move refused in the current state: where the lead is and what it may do instead."""

    stage: str
    status: str
    allowed_moves: list[str]


# The errors a handler's services may raise (the API root adds 401, 413, 422, 429 and 503 to every
# operation where they can happen).
ERRORS = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}
