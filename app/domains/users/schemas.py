"""What crosses the domain's boundary: create/update inputs and public views (never the tables)."""

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import AfterValidator, GetJsonSchemaHandler, field_validator
from pydantic import Field as PydanticField
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError
from sqlmodel import Field

from app.domains.base.actors import Role
from app.domains.base.permissions import permissions
from app.domains.base.schemas import NOT_NULL, AwareUTCDatetime, InputSchema
from app.domains.users.emails import MAX_LENGTH, InvalidEmailError, normalized_email
from app.domains.users.models import APIKeyBase, UserBase


def _email(value: str) -> str:
    try:
        return normalized_email(value)
    except InvalidEmailError as error:
        raise PydanticCustomError("value_error", "{reason}", {"reason": str(error)}) from None  # no "Value error, "


# The users domain's one rule (`emails.py`), checked here so a request learns of it as a field error.
Email = Annotated[
    str,
    PydanticField(
        max_length=MAX_LENGTH,
        json_schema_extra={"format": "email"},
        description="An e-mail address, not at a special-use domain (`.test`, `.local`, `localhost`...); "
        "stored lower-cased",
    ),
    AfterValidator(_email),
]


class RegisteredPermissions:
    """The registered permissions as the enum of a list's items in its JSON schema, read when the
    schema is built (once every domain has registered its own)."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["items"] = {"type": "string", "enum": sorted(permissions.all())}
        return json_schema


# A list of permission names, each one a registered permission.
Scopes = Annotated[list[str], RegisteredPermissions()]


def _registered_permissions(names: list[str] | None) -> list[str] | None:
    if names is not None and (unknown := permissions.unknown(names)):
        raise ValueError(f"unknown permissions: {', '.join(unknown)}")
    return names


class UserInput(UserBase, InputSchema):
    image_url: str | None = Field(default=None, max_length=2048, schema_extra={"pattern": r"^https?://[^/\s]+"})

    @field_validator("image_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """Clients render it: only http(s) URLs (no `javascript:`, no `data:`)."""
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError("must be an http:// or https:// URL")
        return value


class UserCreate(UserInput):
    email: Email
    clerk_id: str | None = Field(default=None, min_length=1, max_length=64, description="Link to a Clerk user")
    role: Role = Role.MEMBER
    is_active: bool = True


class UserUpdate(UserInput):
    """Only the fields present in the request change; `null` is refused where a value is required."""

    email: Annotated[Email | None, NOT_NULL] = None
    role: Annotated[Role | None, NOT_NULL] = None
    is_active: Annotated[bool | None, NOT_NULL] = None


class UserPublic(UserBase):
    id: UUID
    email: str | None
    clerk_id: str | None
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


class APIKeyCreate(APIKeyBase, InputSchema):
    scopes: Annotated[Scopes | None, AfterValidator(_registered_permissions)] = Field(
        default=None,
        description="The permissions the key grants (e.g. users:read); defaults to every permission of its creator",
    )
    expires_at: AwareUTCDatetime = None


class APIKeyPublic(APIKeyBase):
    id: UUID
    user_id: UUID
    parent_id: UUID | None = Field(description="The key that created this one: revoking it revokes this one")
    organization_id: UUID | None = Field(
        description="The organization the key acts in (the one active when it was created); null: a personal key"
    )
    prefix: str
    scopes: Scopes
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class APIKeyCreated(APIKeyPublic):
    key: str = Field(description="The full key. It is shown once, now, and never again.")
