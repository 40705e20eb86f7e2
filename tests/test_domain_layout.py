"""Every domain has the same layout, and there is one way to get a service (README, "Layout").

Checked on the code itself, so a new domain is held to it with no list to edit here.
"""

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import app.domains
import app.models
from app.domains.base.exceptions import DomainError
from app.domains.base.models import TableBase
from app.domains.base.repository import Repository
from app.domains.base.schemas import InputSchema
from app.domains.base.service import Service, ServiceBase
from app.infrastructure.config import PROJECT_ROOT

DOMAINS_DIR = PROJECT_ROOT / "app" / "domains"
DOMAINS = sorted(path.name for path in DOMAINS_DIR.iterdir() if (path / "__init__.py").exists() and path.name != "base")
LAYOUT = {"__init__.py", "models.py", "repository.py", "rules.py", "service.py"}  # and schemas, permissions,
# exceptions where the domain has any


def _import_every_domain_module() -> None:
    for module in pkgutil.walk_packages(app.domains.__path__, "app.domains."):
        importlib.import_module(module.name)


def _subclasses(cls: type) -> Iterator[type]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def _ours(cls: type) -> tuple[str, str] | None:
    """(domain, module) for a class a domain defines (not base's, not a test's)."""
    parts = cls.__module__.split(".")
    if parts[:2] != ["app", "domains"] or len(parts) < 4 or parts[2] == "base":
        return None
    return parts[2], parts[3]


def test_there_are_domains_to_check() -> None:
    assert {"users", "webhooks"} <= set(DOMAINS)


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_domain_has_the_files_of_the_layout(domain: str) -> None:
    present = {path.name for path in (DOMAINS_DIR / domain).glob("*.py")}
    assert present >= LAYOUT, f"app/domains/{domain} lacks {sorted(LAYOUT - present)}"


def test_each_kind_of_class_lives_in_its_file() -> None:
    """Tables in models.py, repositories in repository.py, table services in service.py with their
    row policy from rules.py, errors in exceptions.py, input schemas in schemas.py."""
    _import_every_domain_module()
    expected = {Repository: "repository", Service: "service", DomainError: "exceptions", InputSchema: "schemas"}
    misplaced = []
    for base, module in expected.items():
        for cls in _subclasses(base):
            where = _ours(cls)
            if where is not None and where[1] != module:
                misplaced.append(f"{cls.__module__}.{cls.__qualname__} belongs in app/domains/{where[0]}/{module}.py")
    for model in _subclasses(TableBase):
        if hasattr(model, "__table__") and (where := _ours(model)) is not None and where[1] != "models":
            misplaced.append(f"{model.__module__}.{model.__qualname__} belongs in app/domains/{where[0]}/models.py")
    for service in _subclasses(Service):
        if (where := _ours(service)) is None:
            continue
        domain = where[0]
        rules = importlib.import_module(f"app.domains.{domain}.rules")
        if not any(service.policy is value for value in vars(rules).values()):
            misplaced.append(f"{service.__qualname__}.policy is not defined in app/domains/{domain}/rules.py")
        if service.repository_type.__module__ != f"app.domains.{domain}.repository":
            misplaced.append(f"{service.__qualname__}.repository_type is not in app/domains/{domain}/repository.py")
    assert not misplaced, "\n".join(misplaced)


def _service_names() -> set[str]:
    _import_every_domain_module()
    importlib.import_module("tests.scratch")
    return {cls.__name__ for cls in _subclasses(ServiceBase)}


def _python_files() -> Iterator[Path]:
    for folder in ("app", "tests", "bench", "scripts"):
        yield from (PROJECT_ROOT / folder).rglob("*.py")


def test_services_are_built_by_their_unit_of_work_only() -> None:
    """`uow.service(X)` (with `actor=` to act as someone else) is the one way: a service built by
    hand would miss the dependencies the bootstrap injects, or the unit's cache."""
    names = _service_names()
    assert {"UserService", "APIKeyService", "ClerkUserSync", "ClerkDeliveries"} <= names
    built_by_hand = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                called = node.func
                name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", None)
                if name in names:
                    built_by_hand.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: {name}(...)")
    assert not built_by_hand, "\n".join(built_by_hand)


def test_no_two_clerk_modules_share_a_name() -> None:
    """Each Clerk module is named for what it does (tokens, the Backend API, deliveries, a domain's
    sync or reconciliation, a flow and its tasks), so a name leads to one file."""
    names = [path.stem for path in (PROJECT_ROOT / "app").rglob("*clerk*.py")]
    assert len(names) == len(set(names)), sorted(names)
    assert "clerk" not in names
