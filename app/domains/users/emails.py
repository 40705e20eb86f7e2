"""The one rule for every e-mail address a user row stores, whichever path writes it: the API's
schemas, the Clerk webhook and reconciliation, the CLI and `populate` all end in `normalized_email`
(the schemas call it to answer early; `UserService` calls it on every write, so nothing bypasses it).

- Unicode NFC, so `é` typed as one character or as `e` + a combining accent is one address: the
  unique index would otherwise hold two users whose addresses look identical.
- Surrounding whitespace trimmed.
- Validated as an address by email-validator, with no DNS lookup: one `@`, a domain with a dot and
  not a special-use name (`.test`, `localhost`...), no quoted local part, no display name (`Ada
  <ada@example.com>`), no control or invisible characters.
- The domain as IDNA normalises it (case-folded, `xn--` spelled in Unicode), and then the whole
  address lower-cased: the unique index is case-insensitive because the stored values are. Local
  parts that differ only by case are one mailbox at every provider that matters; keeping their case
  would let `Ada@` and `ada@` be two users.
"""

import unicodedata

MAX_LENGTH = 320  # the column's; email-validator already refuses past 254


class InvalidEmailError(ValueError):
    """Not an e-mail address under the rule above; the message says why."""


class NormalizedEmail(str):
    """What `normalized_email` returns, and only it: the schema's result reaches the service as one,
    which then need not validate it again (email-validator costs ~50 µs an address)."""

    __slots__ = ()


def normalized_email(value: str) -> NormalizedEmail:
    """The address as stored, or InvalidEmailError."""
    if type(value) is NormalizedEmail:
        return value
    # Imported on first use: it costs ~40 ms of the API's start, and most processes validate
    # no address for a while (reads authenticate by key or token).
    from email_validator import EmailNotValidError, validate_email  # noqa: PLC0415

    text = unicodedata.normalize("NFC", value).strip()
    try:
        address = validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidEmailError(f"value is not a valid email address: {error}") from None
    return NormalizedEmail(unicodedata.normalize("NFC", address.lower()))
