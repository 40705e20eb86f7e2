"""`uow.service(X)`, the one way to get a service: built once per unit and actor, on the unit's
session, with the dependencies the bootstrap registered, and as another actor only when asked."""

import dataclasses
from collections.abc import Callable
from functools import partial

import pytest
from sqlalchemy import select

from app.bootstrap import Container
from app.domains.base.actors import Actor, AuthMethod, Role
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.unit_of_work import ServiceFactories, UnitOfWork
from app.domains.users.clerk_user_reconciliation import ClerkUserReconciliation
from app.domains.users.clerk_user_sync import ClerkUserSync
from app.domains.users.models import User
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.attempts import AttemptLimiter
from tests.conftest import actor_of


def test_a_unit_builds_each_service_once_per_actor_on_its_session(container: Container) -> None:
    member = Actor(None, Role.MEMBER, frozenset(), AuthMethod.API_KEY)
    uow = container.unit_of_work(member)
    users = uow.service(UserService)
    assert uow.service(UserService) is users
    assert users.actor is member
    as_system = uow.service(UserService, actor=Actor.system())
    assert as_system is not users
    assert as_system is uow.service(UserService, actor=Actor.system())  # an equal actor: the same one
    assert (as_system.actor, as_system.session) == (Actor.system(), users.session)
    uow.close()


def test_the_unit_s_actor_is_read_when_first_needed(container: Container) -> None:
    """A request's services are built before it authenticates; they act as whoever it turns out to be."""
    uow = container.unit_of_work()
    users = uow.service(UserService)
    with pytest.raises(RuntimeError, match="no actor yet"):
        _ = users.actor
    uow.actor = Actor.system()
    assert users.actor == Actor.system()


def test_dependencies_come_from_the_bootstrap_s_factory(container: Container) -> None:
    uow = container.unit_of_work(Actor.system())
    api_keys = uow.service(APIKeyService)
    assert (api_keys.hasher, api_keys.attempts) == (container.hasher, container.attempts)
    other = AttemptLimiter(per_client=1, per_key=1)
    replaced = dataclasses.replace(container, attempts=other)  # the factories follow the fields
    assert replaced.unit_of_work(Actor.system()).service(APIKeyService).attempts is other


def test_a_service_whose_dependencies_nobody_registered_is_refused(container: Container) -> None:
    bare = UnitOfWork(container.database.session_factory, Actor.system())
    with pytest.raises(TypeError, match="hasher"):
        bare.service(APIKeyService)
    registered = ServiceFactories().register(
        APIKeyService, partial(APIKeyService, hasher=container.hasher, attempts=container.attempts)
    )
    assert UnitOfWork(container.database.session_factory, Actor.system(), registered).service(APIKeyService)


def test_clerk_s_users_are_applied_as_the_system_or_an_admin_only(
    open_uow: Callable[[Actor], UnitOfWork], make_user: Callable[..., User]
) -> None:
    uow = open_uow(actor_of(make_user()))
    for planting in (
        lambda: uow.service(ClerkUserSync).authenticate("user_planted"),
        lambda: uow.service(ClerkUserSync).ensure_user("user_planted"),
        lambda: uow.service(ClerkUserReconciliation).reconcile_user({"id": "user_planted"}),
        lambda: uow.service(ClerkUserReconciliation).tombstone_deleted(["user_planted"]),
    ):
        with pytest.raises(PermissionDeniedError):
            planting()
    assert uow.session.scalars(select(User).where(User.clerk_id == "user_planted")).first() is None
    admin = actor_of(make_user(role=Role.ADMIN))
    assert uow.service(ClerkUserSync, actor=admin).ensure_user("user_by_admin").clerk_id == "user_by_admin"
