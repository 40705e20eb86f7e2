"""The unit of work: one session and one transaction for one operation, whoever runs it.

Every adapter works the same way: the API per request, the CLI per command, a flow per batch.

    with container.unit_of_work(Actor.system()) as uow:
        user = uow.service(UserService).create(data)
    # committed here; rolled back instead if the block raised

`uow.service(X)` is the one way to get a service: built on first use by the factory the bootstrap
registered for X (its dependencies injected there) or else by X itself, on the unit's session, acting
as the unit's actor, or as `actor=` (see `service`). Nothing commits but the unit.

A unit built for reading (`read_only=True` where it is made; the API does it for GET requests) runs
its statements without a transaction: each commits on its own. It is for reads, and for writes of a
single statement (authentication's first-sight insert and `last_used_at`); a change of several rows
that must land together belongs in a transactional unit.
"""

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, cast

from sqlalchemy.orm import Session

from app.domains.base.actors import Actor

# How a service is built: on a unit of work, for an actor (None: the unit's, once it is known).
type ServiceFactory[S] = Callable[[UnitOfWork, Actor | None], S]


class ServiceFactories:
    """The factories of the services that have dependencies, registered by the bootstrap with the
    dependencies given explicitly: `register(APIKeyService, partial(APIKeyService, hasher=...))`.
    A service registered nowhere is built by its class (`UserService(uow, actor)`)."""

    def __init__(self) -> None:
        self._factories: dict[type, ServiceFactory[Any]] = {}

    def register[S](self, service_type: type[S], factory: ServiceFactory[S]) -> Self:
        self._factories[service_type] = factory
        return self

    def factory_for[S](self, service_type: type[S]) -> ServiceFactory[S]:
        # Registered in pairs by `register`, whose signature ties each factory to its type.
        return cast("ServiceFactory[S]", self._factories.get(service_type, service_type))


class UnitOfWork:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        actor: Actor | None = None,
        services: ServiceFactories | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._session: Session | None = None
        self._actor = actor
        self._factories = services or ServiceFactories()
        self._services: dict[tuple[type, Actor | None], Any] = {}

    @property
    def session(self) -> Session:
        """Opened on first use (a session takes a connection only when it first runs a statement)."""
        if self._session is None:
            self._session = self._session_factory()
        return self._session

    @property
    def actor(self) -> Actor:
        if self._actor is None:  # fail closed: no query runs for an unknown actor
            raise RuntimeError("this unit of work has no actor yet: authenticate first")
        return self._actor

    @actor.setter
    def actor(self, actor: Actor) -> None:
        if self._actor is not None:
            raise RuntimeError("the actor of a unit of work is set once")
        self._actor = actor

    def service[S](self, service_type: type[S], *, actor: Actor | None = None) -> S:
        """The unit's instance of a service (built on first use), acting as the unit's actor.

        `actor=` gives one acting as another actor, on the same session and transaction: the one
        way past the row policy is `actor=Actor.system()` (verified input, internal lookups), and
        `actor=Actor.on_behalf_of(user_id, role)` acts as that user (the CLI, a flow).
        """
        key = (service_type, actor)
        service = self._services.get(key)
        if service is None:
            service = self._services[key] = self._factories.factory_for(service_type)(self, actor)
        return cast("S", service)  # keyed by its type

    def commit(self) -> None:
        if self._session is not None:
            self._session.commit()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()

    def close(self) -> None:
        """Return the connection to the pool. Call it in the thread that used the session."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if error_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()
