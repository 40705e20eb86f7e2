"""The users domain's one e-mail rule (`normalized_email`), and `UserService` applying it to every
write, whatever the caller passes (schemas bypassed: a dict, a flow's changes)."""

import unicodedata
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Actor
from app.domains.base.exceptions import ConflictError, DomainValidationError
from app.domains.users.emails import InvalidEmailError, normalized_email
from app.domains.users.models import User
from app.domains.users.service import UserService

NFC = "josé@example.com"
NFD = unicodedata.normalize("NFD", NFC)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (NFC, NFC),
        (NFD, NFC),  # one address, whichever way the accent was typed
        ("  Ada@Example.COM \t", "ada@example.com"),  # trimmed, lower-cased
        ("ada@MÜNCHEN.de", "ada@münchen.de"),  # the domain case-folded by IDNA
        ("ada@xn--mnchen-3ya.de", "ada@münchen.de"),  # one spelling of an internationalised domain
        ("ada@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "ada@example.com"),  # full-width EXAMPLE
        ("Ada.Lovelace+tag@sub.example.org", "ada.lovelace+tag@sub.example.org"),
        ("İ@example.com", "i̇@example.com"),  # what str.lower() makes of it, NFC
    ],
)
def test_the_rule(given: str, stored: str) -> None:
    assert normalized_email(given) == stored
    assert normalized_email(stored) == stored  # idempotent: what is stored passes again unchanged
    assert unicodedata.is_normalized("NFC", stored)


def test_the_rules_own_result_is_not_validated_twice() -> None:
    """A schema's result reaches the service as a NormalizedEmail: returned as is. Any other string,
    a str subclass included, goes through the whole rule."""
    once = normalized_email("Ada@Example.com")
    assert normalized_email(once) is once

    class Lookalike(str):
        pass

    with pytest.raises(InvalidEmailError):
        normalized_email(Lookalike("not-an-email"))


@pytest.mark.parametrize(
    "given",
    [
        "not-an-email",
        "ada@",
        "@example.com",
        "ada@localhost",  # no dot in the domain
        "ada@example.test",  # a special-use name
        "Ada <ada@example.com>",  # a display name
        '"ada lovelace"@example.com',  # a quoted local part
        "ada@[192.0.2.1]",  # an address literal
        "ad\x00a@example.com",
        "ad\u200ba@example.com",  # a zero-width space
        "ada@exa\nmple.com",
        "a" * 250 + "@example.com",  # past 254 characters
        "",
    ],
)
def test_what_is_not_an_address(given: str) -> None:
    with pytest.raises(InvalidEmailError, match=r"^value is not a valid email address: "):
        normalized_email(given)


def test_every_write_of_the_service_applies_the_rule(container: Container, session: Session) -> None:
    with container.unit_of_work(Actor.system()) as uow:
        users = uow.service(UserService)
        created = users.create({"email": f"  {NFD.upper()} "})
        assert created.email == NFC
        assert type(created.email) is str  # what the drivers bind: a plain string
        users.apply_changes(created, {"email": "Ada@EXAMPLE.com"})
        assert created.email == "ada@example.com"
        for bad in ("not-an-email", "Ada <ada@example.com>", 42):
            with pytest.raises(DomainValidationError) as refused:
                users.apply_changes(created, {"email": bad})
            assert refused.value.extra["errors"][0]["key"] == "email"
            with pytest.raises(DomainValidationError):
                users.create({"email": bad})
        users.apply_changes(created, {"email": None})  # no e-mail is allowed (phone sign-ups, tombstones)
        assert created.email is None


@pytest.mark.parametrize("path", ["create_many_if_absent", "upsert"])
def test_bulk_and_upsert_writes_apply_it_too(container: Container, session: Session, path: str) -> None:
    with container.unit_of_work(Actor.system()) as uow:
        users = uow.service(UserService)
        if path == "create_many_if_absent":
            users.create_many_if_absent([{"email": NFD}, {"email": NFC}])  # one address: the second is skipped
        else:
            users.upsert({"email": NFC}, match_fields="email")
            users.upsert({"email": f" {NFD.upper()}", "first_name": "José"}, match_fields="email")  # finds it
    assert [user.email for user in session.query(User)] == [NFC]


def test_an_nfd_duplicate_is_a_conflict(container: Container, make_user: Callable[..., User]) -> None:
    make_user(email=NFC)
    with pytest.raises(ConflictError, match="already exists"), container.unit_of_work(Actor.system()) as uow:
        uow.service(UserService).create({"email": NFD})
