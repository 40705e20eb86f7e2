"""Errors of the webhooks domain."""

from app.domains.base.exceptions import MalformedInputError


class InvalidPayloadError(MalformedInputError):
    """The body is not a Clerk event, or an object in it is not what its type says."""
