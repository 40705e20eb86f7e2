"""What crosses the webhooks domain's boundary: Clerk's event envelope, and the parts of a Clerk
object every domain that applies one reads (its id, its timestamps, a deletion).

msgspec structs, not pydantic schemas: they convert the decoded body as it is (unknown fields are
ignored), and they are checked although Clerk signed them: a value the database would refuse (too
long, a NUL, a date past year 9999) makes the event fail with its reason instead of failing the
request.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from app.domains.webhooks.exceptions import InvalidPayloadError

NO_NUL = r"^[^\x00]*$"  # PostgreSQL refuses a NUL in text
ClerkId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_999)] | None  # Unix ms up to 9999-12-31


class ClerkEvent(msgspec.Struct):
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
    data: dict[str, Any]  # the envelope's `timestamp` is not used: its unit varies, data.updated_at orders


class ClerkDeletedObject(msgspec.Struct):
    """What a `*.deleted` event carries (`{id, object, deleted: true}`), whatever the object."""

    id: ClerkId
    deleted: bool = True


def parse_event(payload: Any) -> ClerkEvent:
    try:
        return msgspec.convert(payload, ClerkEvent)
    except msgspec.ValidationError as error:
        raise InvalidPayloadError(f"not a Clerk event: {error}") from error


def from_millis(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value is not None else None
