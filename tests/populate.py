"""`python -m tests.populate --count N` (`task populate -- --count N`): fill a development database
with realistic fake users, one in ten with an API key, through the users domain's services.

`--count` is a target, not an increment: the users that exist (tombstones aside) count towards it, so
a rerun with the same count creates nothing. Each batch of users and their keys is one unit of work
(one transaction), inserted with `create_many_if_absent`: the schemas validate every row, the
services normalise it and check it as `create` would, and a row that would collide is skipped.

The fake keys cannot be used: they all store the argon2 hash of one random secret, drawn and
discarded per run (argon2 costs ~100 ms a key: 10 000 real ones would take ~17 minutes).
`task generate-user` makes a usable one.

A development tool beside the factories: fake data belongs in development databases only, and it
refuses any other before it connects (`development_database_refusal`): ENVIRONMENT must be
development (its default) and DATABASE_URL a SQLite file or a PostgreSQL database whose name ends in
`_dev` or `_test`. Not judged by host: production databases are often reached on 127.0.0.1 through an
SSH tunnel or a cloud SQL proxy. `--check` only applies that test; `task populate` runs it before
`alembic upgrade`, so a refused target is not even migrated.
"""

import argparse
import itertools
import math
import random
import re
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import col

from app.bootstrap import Container, bootstrap
from app.domains.base.actors import Actor, Role
from app.domains.base.models import utcnow
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.models import User
from app.domains.users.permissions import UserPermission
from app.domains.users.schemas import APIKeyCreate, UserCreate
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.config import Settings, get_settings
from tests.factories import UserFactory

DEFAULT_COUNT = 100
DEFAULT_BATCH_SIZE = 1000
KEY_EVERY = 10  # one new user in ten gets an API key
ADMIN_EVERY = 100
INACTIVE_EVERY = 25
NAME_POOL = 250  # people built by the factory once per run (~1 ms each); their names are mixed
DOMAINS = ("example.com", "example.org", "example.net")
KEY_NAMES = ("CI deploy", "laptop", "staging sync", "analytics export", "backup job", "mobile app")
KEY_SCOPES: tuple[list[str] | None, ...] = (
    None,
    [UserPermission.USERS_READ],
    [UserPermission.USERS_READ, UserPermission.API_KEYS_READ],
)
KEY_LIFETIMES = (None, timedelta(days=30), timedelta(days=365))
USABLE_KEY_HINT = "for a usable key: task generate-user -- --email you@example.com"
DEVELOPMENT_NAME = re.compile(r".+_(dev|test)")  # PostgreSQL databases populate may fill
# Connection parameters that would pick another database than the URL's path names.
DATABASE_CHOOSING_PARAMETERS = frozenset({"dbname", "database", "service"})


@dataclass(frozen=True, slots=True)
class Outcome:
    existing: int  # users before the run
    users: int  # created by the run
    keys: int
    seconds: float

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0


class FakePeople:
    """New users from the factory's realistic names, with numbered e-mails (in mixed case: the
    service stores them lower-cased) so that one run's rows never collide with each other."""

    def __init__(self, first_number: int, expected: int) -> None:
        pool = UserFactory.batch(max(1, min(NAME_POOL, expected)))
        self._first_names = [user.first_name or "Alex" for user in pool]
        self._last_names = [user.last_name or "Smith" for user in pool]
        self._numbers = itertools.count(first_number)
        self._random = random.Random()

    def take(self, size: int) -> list[UserCreate]:
        return [self._person(next(self._numbers)) for _ in range(size)]

    def _person(self, number: int) -> UserCreate:
        first, last = self._random.choice(self._first_names), self._random.choice(self._last_names)
        local_part = ".".join(re.sub(r"[^A-Za-z0-9]", "", name) for name in (first, last))
        return UserCreate(
            email=f"{local_part}.{number}@{DOMAINS[number % len(DOMAINS)]}",
            first_name=first,
            last_name=last,
            role=Role.ADMIN if number % ADMIN_EVERY == 0 else Role.MEMBER,
            is_active=number % INACTIVE_EVERY != 0,
        )

    def key_request(self) -> APIKeyCreate:
        lifetime = self._random.choice(KEY_LIFETIMES)
        return APIKeyCreate(
            name=self._random.choice(KEY_NAMES),
            scopes=self._random.choice(KEY_SCOPES),
            expires_at=utcnow() + lifetime if lifetime else None,
        )


class ProgressBar:
    """One line redrawn at most ten times a second (`update(done, total)`); silent when disabled."""

    WIDTH = 30

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self._started, self._drawn = time.perf_counter(), -math.inf
        self._shown = False

    def update(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or total <= 0 or (now - self._drawn < 0.1 and done < total):
            return
        self._drawn, self._shown = now, True
        filled = self.WIDTH * done // total
        rate = done / (now - self._started)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {100 * done // total:3d} % {done}/{total} users, {rate:.0f}/s")
        self.stream.flush()

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


def populate(
    container: Container,
    count: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Create users until `count` exist (tombstones aside), one transaction per batch;
    `progress(created, to_create)` after each."""
    started = time.perf_counter()
    with container.unit_of_work(Actor.system()) as uow:
        existing = uow.service(UserService).count()
    missing = max(0, count - existing)
    users = keys = 0
    if missing:
        people = FakePeople(first_number=existing + 1, expected=missing)
        unusable_hash = container.hasher.hash(secrets.token_urlsafe(32))  # the secret is dropped here
        while users < missing:
            with container.unit_of_work(Actor.system()) as uow:
                size = min(batch_size, missing - users)
                created, created_keys = _add_batch(uow, people.take(size), people, users, unusable_hash)
            if not created:
                raise RuntimeError("a whole batch collided with existing users: nothing was created")
            users, keys = users + created, keys + created_keys
            if progress is not None:
                progress(users, missing)
    return Outcome(existing, users, keys, time.perf_counter() - started)


def _add_batch(
    uow: UnitOfWork, new_users: list[UserCreate], people: FakePeople, created_before: int, key_hash: str
) -> tuple[int, int]:
    """One batch of users (any whose e-mail is taken is skipped), and a key for the run's 1st, 11th,
    21st... user created."""
    user_service = uow.service(UserService)
    user_ids = user_service.create_many_if_absent(new_users)
    owners = user_service.get_many(col(User.id).in_(user_ids[-created_before % KEY_EVERY :: KEY_EVERY]))
    new_keys = [_key_values(uow, owner, people.key_request(), key_hash) for owner in owners]
    key_ids = uow.service(APIKeyService).create_many_if_absent(new_keys)
    return len(user_ids), len(key_ids)


def _key_values(uow: UnitOfWork, owner: User, request: APIKeyCreate, key_hash: str) -> dict[str, object]:
    """The row `issue` would store for a key the owner creates (as `generate-user` does), but with
    the run's unusable hash; the full key is dropped."""
    actor = Actor.on_behalf_of(owner.id, Role(owner.role))
    values, _ = uow.service(APIKeyService, actor=actor).new_key(request)
    return {**values, "key_hash": key_hash}


def development_database_refusal(settings: Settings) -> str | None:
    """Why the settings' database is not one populate may fill (None: it may). Reads no database."""
    if not settings.is_development:
        return f"populate fills development databases only (ENVIRONMENT={settings.environment})"
    reason = _not_a_development_database(settings.database_url)
    return None if reason is None else f"populate fills development databases only: {reason}"


def _not_a_development_database(database_url: str) -> str | None:
    try:
        url = make_url(database_url)
    except ArgumentError:
        return "DATABASE_URL is not a database URL"
    backend = url.get_backend_name()
    if backend == "sqlite":
        return None
    if backend != "postgresql":
        return f"{backend} is neither SQLite nor PostgreSQL"
    if chosen_elsewhere := sorted(DATABASE_CHOOSING_PARAMETERS & {name.lower() for name in url.query}):
        return f"DATABASE_URL chooses the database with {', '.join(chosen_elsewhere)}"
    if DEVELOPMENT_NAME.fullmatch(name := url.database or ""):
        return None
    return f"the PostgreSQL database {name!r} is not named *_dev or *_test"


def _whole_number(minimum: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}, not {value!r}")
        return number

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="populate", description="Fill a development database with fake users (and API keys for some)."
    )
    parser.add_argument(
        "--count", type=_whole_number(0), default=DEFAULT_COUNT, help="users that should exist (a target, not a delta)"
    )
    parser.add_argument("--batch-size", type=_whole_number(1), default=DEFAULT_BATCH_SIZE, help="users per transaction")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (there is none off a terminal either)")
    parser.add_argument(
        "--check", action="store_true", help="only check that DATABASE_URL is a development database; touch nothing"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    if (refusal := development_database_refusal(settings)) is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 1
    if args.check:
        return 0
    container = bootstrap(settings)
    progress = ProgressBar(sys.stderr, enabled=not args.quiet and sys.stderr.isatty())
    try:
        outcome = populate(container, args.count, args.batch_size, progress.update)
    except SQLAlchemyError as error:
        print(f"\nerror: database failure ({type(error).__name__}); is it migrated (`task migrate`)?", file=sys.stderr)
        return 1
    finally:
        progress.close()
        container.dispose()
    if not outcome.users:
        print(f"Nothing to do: {outcome.existing} users exist (target {args.count}).")
        return 0
    print(
        f"Created {outcome.users} users and {outcome.keys} API keys in {outcome.seconds:.1f} s"
        f" ({outcome.users_per_second:.0f} users/s); {outcome.existing + outcome.users} users exist."
    )
    if outcome.keys:
        print(f"The fake API keys cannot be used (their hash matches no key); {USABLE_KEY_HINT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
