"""Errors of the users domain."""

from app.domains.base.exceptions import AuthenticationError


class InvalidAPIKeyError(AuthenticationError):
    """The key is malformed, unknown, wrong, expired or revoked, or its user is inactive."""
