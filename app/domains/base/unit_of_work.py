"""The unit of work: one session and one transaction for one operation, whoever runs it.

Every adapter works the same way: the API per request, the CLI per command, a flow per batch.

    with container.unit_of_work(Actor.system()) as uow:
        user = uow.service(UserService).create(data)
    # committed here; rolled back instead if the block raised

Services are built lazily, once each, on the unit's session and actor. Nothing commits but the unit.

A unit built for reading (`read_only=True` where it is made; the API does it for GET requests) runs
its statements without a transaction: each commits on its own. It is for reads, and for writes of a
single statement (authentication's first-sight insert and `last_used_at`); a change of several rows
that must land together belongs in a transactional unit.
"""

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, cast

from sqlalchemy.orm import Session

from app.domains.base.actors import Actor


class UnitOfWork:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        actor: Actor | None = None,
        resources: Mapping[type, Any] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._session: Session | None = None
        self._actor = actor
        self._services: dict[Callable[[UnitOfWork], Any], Any] = {}
        self._resources = resources or {}

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

    def resource[R](self, kind: type[R]) -> R:
        """A process-wide dependency (the API-key hasher, say), registered by the bootstrap."""
        return cast(R, self._resources[kind])  # registered by type: the bootstrap pairs each with its kind

    def service[S](self, service_type: Callable[["UnitOfWork"], S]) -> S:
        """The unit's instance of a service, bound to the unit's actor (built on first use)."""
        service = self._services.get(service_type)
        if service is None:
            service = self._services[service_type] = service_type(self)
        return cast(S, service)  # keyed by the callable that built it

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
