"""A domain to generate: its names, owner and fields, checked against the app as it stands, and
the text of every file it writes (from `templates/`, one file each, `${name}` placeholders)."""

import importlib
import pkgutil
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from string import Template

from scripts.new_domain.fields import Field, Reference, parse_field
from scripts.new_domain.names import Names, SpecError, camel, domain_names

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "templates"
OWNERS = ("organization", "user")


def render(template: str, values: dict[str, str]) -> str:
    """The template with every placeholder filled; a placeholder left over is an error."""
    return Template((TEMPLATES / template).read_text()).substitute(values)


def _docstring(text: str, indent: int = 8) -> str:
    """A docstring's text wrapped to 100 columns (as the kit's are), its later lines indented under
    the first."""
    return textwrap.fill(text, width=100 - indent - 3, subsequent_indent=" " * indent)


def _services() -> dict[str, type]:
    """table name -> the service class of every domain table (imports every domain's service)."""
    import app.domains  # noqa: PLC0415  (the app is imported only when a domain is planned)
    import app.models  # noqa: PLC0415
    from app.domains.base.service import Service  # noqa: PLC0415

    for module in pkgutil.iter_modules(app.domains.__path__):
        if module.name != "base" and (ROOT / "app" / "domains" / module.name / "service.py").exists():
            importlib.import_module(f"app.domains.{module.name}.service")
    found: dict[str, type] = {}
    stack = list(Service.__subclasses__())
    while stack:
        service = stack.pop()
        stack.extend(service.__subclasses__())
        repository = getattr(service, "repository_type", None)
        if repository is not None and service.__module__.startswith("app.domains."):
            found.setdefault(repository.model_type.__tablename__, service)
    return found


def resolve_reference(field: Field, domain: Names, owned_by: str) -> Field:
    """An `fk` field's target, read from the app: a table a service serves under a user or
    organization row policy, with a factory for the tests to make its rows."""
    from app.domains.base.policies import OwnedBy  # noqa: PLC0415
    from app.domains.organizations.rules import OfActiveOrganization  # noqa: PLC0415

    table = field.values[0]
    if table == "organizations":
        raise SpecError(f"{field.name}: the organization is the owner (--owned-by organization), not a field")
    if table == domain.plural:
        raise SpecError(f"{field.name}: a domain referring to itself is not generated")
    service = _services().get(table)
    if service is None:
        raise SpecError(f"{field.name}: no domain serves a table named {table!r}")
    model = service.repository_type.model_type
    policy = service.policy
    if isinstance(policy, OfActiveOrganization):
        owner_field, kind = policy.organization_field, "organization"
    elif isinstance(policy, OwnedBy):
        owner_field, kind = policy.owner_field, "user"
    else:
        raise SpecError(f"{field.name}: {table} rows belong to no user or organization; members could not refer to one")
    for column in model.__table__.columns:
        if column.foreign_keys and not column.nullable and column.name != owner_field:
            raise SpecError(
                f"{field.name}: {table} rows refer to rows of their own ({column.name}); the generated tests "
                "cannot make one"
            )
    factories = (ROOT / "tests" / "factories.py").read_text()
    if owner_field != "id" and f"class {model.__name__}Factory(" not in factories:
        raise SpecError(f"{field.name}: tests/factories.py has no {model.__name__}Factory to make {table} rows")
    reference = Reference(
        table=table,
        model=model.__name__,
        model_module=model.__module__,
        service=service.__name__,
        service_module=service.__module__,
        owner_field=owner_field,
        owned_by=kind,
        same_owner=kind == owned_by,
    )
    return replace(field, reference=reference)


def _resolved(field: Field, names: Names, owned_by: str) -> Field:
    """The field with what it needs from the domain: an enum's class name, a reference's target."""
    if field.kind == "enum":
        enum_class = f"{names.model}{camel(field.name)}"
        if camel(field.name) in {"Base", "Create", "Update", "Public", "Service", "Repository", "Permission"}:
            raise SpecError(f"field {field.name!r}: its enum's class {enum_class} would clash with a generated class")
        return replace(field, enum_class=enum_class)
    if field.kind == "fk":
        return resolve_reference(field, names, owned_by)
    return field


@dataclass(frozen=True)
class Domain:
    names: Names
    owned_by: str
    fields: tuple[Field, ...]

    @classmethod
    def parse(cls, name: str, singular: str | None, owned_by: str, specs: list[str]) -> "Domain":
        names = domain_names(name, singular)
        if owned_by not in OWNERS:
            raise SpecError(f"--owned-by {owned_by!r}: user or organization")
        fields = [parse_field(spec) for spec in specs or ["name:str:200"]]
        seen: set[str] = set()
        for field in fields:
            if field.name in seen:
                raise SpecError(f"field {field.name!r} is given twice")
            seen.add(field.name)
        if not any(field.kind == "str" for field in fields):
            raise SpecError("give one str field at least: lists search it, and the tests change it")
        return cls(names, owned_by, tuple(_resolved(field, names, owned_by) for field in fields))

    # -- shared values ------------------------------------------------------------------------------

    @property
    def owner_column(self) -> str:
        return "organization_id" if self.owned_by == "organization" else "owner_id"

    @property
    def references(self) -> list[Field]:
        return [field for field in self.fields if field.reference is not None]

    def _targets(self) -> list[Reference]:
        return [field.reference for field in self.references if field.reference is not None]

    def _has(self, kind: str) -> bool:
        return any(field.kind == kind for field in self.fields)

    def values(self) -> dict[str, str]:
        n = self.names
        sortable = ["created_at", "updated_at", *(field.name for field in self.fields if field.sortable)]
        searchable = [field.name for field in self.fields if field.searchable]
        first_str = next(field for field in self.fields if field.kind == "str")
        owned = {
            "organization": ("organizations", "organization"),
            "user": ("users", "user"),
        }[self.owned_by]
        return {
            "Model": n.model,
            "Models": n.models,
            "model": n.singular,
            "models": n.plural,
            "MODELS": n.constant,
            "url": n.url,
            "models_tag": n.plural.replace("_", "-"),
            "models_title": n.title,
            "Models_title": n.title.capitalize(),
            "model_title": n.singular_title,
            "a_model_title": f"{'an' if n.singular_title[0] in 'aeiou' else 'a'} {n.singular_title}",
            "owner_plural": owned[0],
            "owner_column": self.owner_column,
            "sortable": ", ".join(f'"{name}"' for name in sortable),
            "searchable": ", ".join(f'"{name}"' for name in searchable),
            "first_str": first_str.name,
            "search": repr(first_str.rising_values()[0].strip("'\"").upper()),
        }

    # -- app/domains/NAME --------------------------------------------------------------------------

    def files(self) -> dict[str, str]:
        """path (from the project root) -> content, for every new file."""
        n = self.names
        owner = self.owned_by
        domain = f"app/domains/{n.plural}"
        values = self.values()
        return {
            f"{domain}/__init__.py": render("domain__init__.py.tmpl", values),
            f"{domain}/models.py": render(f"models_{owner}.py.tmpl", values | self._models()),
            f"{domain}/schemas.py": render(f"schemas_{owner}.py.tmpl", values | self._schemas()),
            f"{domain}/repository.py": render("repository.py.tmpl", values),
            f"{domain}/rules.py": render(f"rules_{owner}.py.tmpl", values),
            f"{domain}/permissions.py": render("permissions.py.tmpl", values),
            f"{domain}/service.py": render(f"service_{owner}.py.tmpl", values | self._service()),
            f"app/api/routes/{n.plural}.py": render("routes.py.tmpl", values | self._routes()),
            f"tests/api/test_{n.plural}_api.py": render(f"test_api_{owner}.py.tmpl", values | self._api_tests()),
            f"tests/domains/test_{n.plural}_service.py": render(
                f"test_service_{owner}.py.tmpl", values | self._service_tests()
            ),
        }

    def _models(self) -> dict[str, str]:
        imports = [
            "from uuid import UUID",
            "from sqlmodel import Field, SQLModel",
            "from app.domains.base.models import TableBase",
        ]
        if self.owned_by == "organization" or any(field.kind in {"text", "int", "enum"} for field in self.fields):
            imports.append("import sqlalchemy as sa")
        imports += self._type_imports(schema=False)
        declarations = "".join(
            field.enum_declaration(field.enum_class) + "\n\n" for field in self.fields if field.kind == "enum"
        )
        return {
            "imports": "\n".join(imports),
            "declarations": declarations,
            "base_fields": "\n".join(f"    {field.model_line()}" for field in self.fields),
        }

    def _type_imports(self, schema: bool) -> list[str]:
        imports = []
        if self._has("enum") and not schema:
            imports.append("from enum import StrEnum")
        if self._has("decimal"):
            imports.append("from decimal import Decimal")
        if self._has("datetime") and not schema:
            imports.append("from datetime import datetime")
        return imports

    def _schemas(self) -> dict[str, str]:
        n = self.names
        enums = [field.enum_class for field in self.fields if field.kind == "enum"]
        base_schemas = ["InputSchema", "NOT_NULL"] + (["AwareUTCDatetime"] if self._has("datetime") else [])
        imports = [
            "from datetime import datetime",
            "from typing import Annotated",
            "from uuid import UUID",
            "from sqlmodel import Field",
            f"from app.domains.base.schemas import {', '.join(sorted(base_schemas))}",
            f"from app.domains.{n.plural}.models import {', '.join(sorted([f'{n.model}Base', *enums]))}",
            *self._type_imports(schema=True),
        ]
        overrides = [line for field in self.fields if (line := field.create_override())]
        return {
            "imports": "\n".join(imports),
            "create_overrides": "".join(f"    {line}\n" for line in overrides),
            "create_body": "".join(f"    {line}\n" for line in overrides) or "    pass\n",
            "update_fields": "\n".join(f"    {field.update_line()}" for field in self.fields),
        }

    def _service(self) -> dict[str, str]:
        n = self.names
        organization = self.owned_by == "organization"
        imports = [
            "from typing import Any",
            "from uuid import UUID",
            "from app.domains.base.service import Service",
            f"from app.domains.{n.plural}.models import {n.model}",
            f"from app.domains.{n.plural}.repository import {n.model}Repository",
            f"from app.domains.{n.plural}.rules import {n.plural}_policy",
        ]
        exceptions = ["DomainValidationError"]
        if organization:
            exceptions.append("PermissionDeniedError")
            imports += [
                "from app.domains.base.actors import AuthMethod",
                "from app.domains.organizations.models import Organization",
                "from app.domains.organizations.rules import ensure_can_write_in_organization",
            ]
        references = self.references
        values = {"check_on_create": "", "apply_changes": "", "references": "", "changeable": ""}
        values["changeable"] = ", ".join(f'"{field.name}"' for field in self.fields)
        if references:
            exceptions.append("NotFoundError")
            imports += [
                "from collections.abc import Mapping",
                "from pydantic import BaseModel",
                "from app.domains.base.models import TableBase",
                *sorted({f"from {ref.service_module} import {ref.service}" for ref in self._targets()}),
            ]
            values |= self._reference_checks()
        imports.append(f"from app.domains.base.exceptions import {', '.join(sorted(exceptions))}")
        return values | {"imports": "\n".join(imports)}

    def _reference_checks(self) -> dict[str, str]:
        n = self.names
        organization = self.owned_by == "organization"
        owner, owner_type = ("organization_id", "organization") if organization else ("owner_id", "owner")
        checks = []
        for field in self.references:
            reference = field.reference
            assert reference is not None  # noqa: S101  (references only)
            lookup = f'self._referenced({reference.service}, values["{field.name}"], "{field.name}")'
            checks.append(f'        if "{field.name}" in values:')
            if not reference.same_owner:
                checks.append(f"            {lookup}")
            else:
                variable = field.name.removesuffix("_id")
                checks += [
                    f"            {variable} = {lookup}",
                    f"            if {variable}.{reference.owner_field} != {owner}:",
                    f'                raise unknown_reference("{field.name}")',
                ]
        # With no reference that must share the row's owner, the owner plays no part in the checks.
        owned = any(field.reference and field.reference.same_owner for field in self.references)
        row_references = ", ".join(f'"{field.name}": row.{field.name}' for field in self.references)
        whose = "of the request's tenant" if organization else "of its owner"
        moved = (
            "moved: what it refers to must be of its new organization"
            if organization
            else ("given to another user: what it refers to must be theirs")
        )
        write_check = (
            "        ensure_can_write_in_organization(self.actor)  # refused before any reference is read\n"
            if organization
            else ""
        )
        if owned:
            check_changes = (
                f'        if "{owner}" in changes:  # {moved}\n'
                f"            changes = {{{row_references}, **changes}}\n"
                f'        self._check_references(changes, changes.get("{owner}", row.{owner}))\n'
            )
            against = f", against the {owner_type} it will have"
            signature = f"values: Mapping[str, Any], {owner}: UUID"
            rule = f"one the actor sees, and one {whose} where such rows have an owner"
        else:
            check_changes = "        self._check_references(changes)\n"
            against = ""
            signature = "values: Mapping[str, Any]"
            rule = "one the actor sees"
        changes_doc = _docstring(
            f"Every update path passes here: what the {n.singular_title} refers to is checked as on creation{against}."
        )
        references_doc = _docstring(
            f"Each row the {n.singular_title} refers to must be {rule}: any other id is refused as if it did not exist."
        )
        apply_changes = f'''
    def apply_changes(self, row: {n.model}, data: Mapping[str, Any] | BaseModel | {n.model}) -> {n.model}:
        """{changes_doc}"""
        changes = self._as_dict(data)
{write_check}{check_changes}        return super().apply_changes(row, changes)
'''
        checks_text = "\n".join(checks)
        references = f'''
    def _check_references(self, {signature}) -> None:
        """{references_doc}"""
{checks_text}

    def _referenced[M: TableBase](self, service_type: type[Service[M]], row_id: Any, key: str) -> M:
        try:
            return self.uow.service(service_type, actor=self.actor).get(row_id)
        except NotFoundError:
            raise unknown_reference(key) from None


def unknown_reference(key: str) -> DomainValidationError:
    return DomainValidationError(
        f"{{key}} names no row this {n.singular_title} may refer to",
        [{{"key": key, "message": "not found among the rows its {owner_type} may refer to"}}],
    )'''
        if owned:
            argument = "data, organization_id" if organization else 'values, values["owner_id"]'
        else:
            argument = "data" if organization else "values"
        return {
            "check_on_create": f"        self._check_references({argument})\n",
            "apply_changes": apply_changes,
            "references": references,
        }

    def _routes(self) -> dict[str, str]:
        """The handlers' docstrings (the operations' descriptions) and the module's (its tag's)."""
        docs = self._route_docs()
        summary = _docstring(docs.pop("routes_summary"), indent=0)
        return {name: _docstring(text) for name, text in docs.items()} | {
            "routes_summary": summary,
            "update_errors": ", errors=(422,)" if self.references else "",  # a reference refused
        }

    def _route_docs(self) -> dict[str, str]:
        title, one = self.names.title, self.values()["a_model_title"]
        owned = any(field.reference and field.reference.same_owner for field in self.references)
        refers = " Each row it refers to must be one the caller may see (else 422)." if self.references else ""
        if self.owned_by == "organization":
            refers = " Each row it refers to must be one of the same organization (else 422)." if owned else refers
            return {
                "routes_summary": f"{title.capitalize()} of the request's active organization: members read, its "
                "admins write (app admins: all).",
                "list_doc": f"The active organization's {title} (none without one; app admins: every organization's).",
                "create_doc": "In the active organization, by one of its admins (app admins may name "
                f"`organization_id`).{refers}",
                "get_doc": f"One {self.names.singular_title} of the active organization (another organization's is "
                "a 404).",
                "update_doc": f"Change {one}: only the fields sent change. The organization's admins (app admins: "
                f"any).{refers}",
                "delete_doc": f"Delete {one} for good. The organization's admins (app admins: any).",
            }
        if owned:
            refers = (
                " Each row it refers to must be one the caller may see and, where rows belong to a user, the "
                "caller's (else 422)."
            )
        return {
            "routes_summary": f"{title.capitalize()}, each of one user: members see and change their own, app admins "
            "every one.",
            "list_doc": f"Your {title} (app admins: everyone's).",
            "create_doc": f"Create {one}: it is yours.{refers}",
            "get_doc": f"One of your {title} (app admins: any); someone else's is a 404.",
            "update_doc": f"Change {one}: only the fields sent change; someone else's is a 404.{refers}",
            "delete_doc": f"Delete {one} for good; someone else's is a 404.",
        }

    # -- tests -------------------------------------------------------------------------------------

    def _rows(self) -> list[dict[str, str]]:
        plain = [field for field in self.fields if field.reference is None]
        return [{field.name: field.rising_values()[index] for field in plain} for index in range(3)]

    @staticmethod
    def _literal(row: dict[str, str]) -> str:
        return "{" + ", ".join(f'"{name}": {value}' for name, value in row.items()) + "}"

    def _test_imports(self) -> list[str]:
        n = self.names
        enums: list[str] = []
        return [
            "from collections.abc import Callable",
            "from typing import Any",
            "from uuid import UUID",
            "import pytest",
            "from sqlalchemy.orm import Session",
            "from app.domains.organizations.models import Organization",
            "from app.domains.users.models import User",
            f"from app.domains.{n.plural}.models import {', '.join([n.model, *enums])}",
            f"from tests.factories import {n.model}Factory, {n.singular}_references",
        ]

    def _reference_tests(self, kind: str) -> dict[str, str]:
        """The lists of reference fields, and the test of what a row may refer to: none (rather than
        a test pytest would skip) when the list it runs over is empty."""
        names = [field.name for field in self.references]
        owned = [field.name for field in self.references if field.reference and field.reference.same_owner]
        lists = {
            "reference_names": repr(names).replace("'", '"'),
            "tenant_reference_names": repr(owned).replace("'", '"'),
        }
        over = names if kind == "api" else owned
        test = render(f"test_{kind}_{self.owned_by}_references.py.tmpl", self.values() | lists) if over else ""
        return lists | {"reference_tests": f"\n\n\n{test.rstrip()}" if test else ""}

    def _api_tests(self) -> dict[str, str]:
        parse = {field.name: "Decimal" for field in self.fields if field.kind == "decimal"} | {
            field.name: "datetime.fromisoformat" for field in self.fields if field.kind == "datetime"
        }
        imports = [
            *self._test_imports(),
            "from dataclasses import dataclass",
            "from functools import partial",
            "from litestar.testing import TestClient",
            "from app.domains.base.actors import Role",
        ]
        if self.owned_by == "organization":
            imports.append("from app.domains.base.models import utcnow")
        if self._has("decimal"):
            imports.append("from decimal import Decimal")
        if self._has("datetime"):
            imports.append("from datetime import datetime")
        rows = ",\n    ".join(self._literal(row) for row in self._rows())
        return {
            "imports": "\n".join(imports),
            "rows": f"[\n    {rows},\n]",
            "parse": "{" + ", ".join(f'"{name}": {reader}' for name, reader in parse.items()) + "}",
            "sortable": "[" + self.values()["sortable"] + "]",
            "invalid_creates": self._invalid(create=True),
            "invalid_changes": self._invalid(create=False),
            **self._reference_tests("api"),
        }

    def _invalid(self, create: bool) -> str:
        lines = []
        for field in self.fields:
            if create and field.required:
                lines.append(f'    "{field.name} left out": ({{"{field.name}": ABSENT}}, "{field.name}"),')
            for case, value in field.invalid_values():
                lines.append(f'    "{field.name} {case}": ({{"{field.name}": {value}}}, "{field.name}"),')
        return "\n".join(lines)

    def _service_tests(self) -> dict[str, str]:
        n = self.names
        imports = [
            *self._test_imports(),
            "from app.bootstrap import Container",
            "from app.domains.base.actors import Actor",
            "from app.domains.base.lists import ListParams",
            "from app.domains.base.unit_of_work import UnitOfWork",
            f"from app.domains.{n.plural}.schemas import {n.model}Create",
            f"from app.domains.{n.plural}.service import {n.model}Service",
            "from tests.conftest import actor_of",
        ]
        exceptions = ["DomainValidationError", "NotFoundError"]
        if self.owned_by == "organization":
            exceptions.append("PermissionDeniedError")
        else:
            imports.append("from app.domains.base.actors import Role")
        imports.append(f"from app.domains.base.exceptions import {', '.join(exceptions)}")
        return {
            "imports": "\n".join(imports),
            "row": self._literal(self._rows()[0]),
            **self._reference_tests("service"),
        }

    # -- edits of existing files -------------------------------------------------------------------

    def factory(self) -> tuple[list[str], str]:
        """The imports tests/factories.py needs, and the factory and reference maker appended to it."""
        n = self.names
        enums = [field.enum_class for field in self.fields if field.kind == "enum"]
        imports = [
            f"from app.domains.{n.plural}.models import {', '.join([n.model, *enums])}",
            "from uuid import UUID",
            "from sqlalchemy.orm import Session",
        ]
        if self._has("decimal"):
            imports.append("from decimal import Decimal")
        lines = [f"    {field.name} = {value}" for field in self.fields if (value := field.factory_value()) is not None]
        if self.owned_by == "organization":
            lines.append("    created_by = None")
        body, stored, returned = [], [], []
        for field in self.references:
            reference = field.reference
            assert reference is not None  # noqa: S101  (references only)
            if reference.owner_field == "id":  # a user: the one the rows are made for
                returned.append(f'"{field.name}": user.id')
                continue
            variable = field.name.removesuffix("_id")
            whose = "organization" if reference.owned_by == "organization" else "user"
            owner = f"{reference.owner_field}={whose}.id"
            body.append(f"    {variable} = {reference.model}Factory.build({owner})")
            stored.append(variable)
            returned.append(f'"{field.name}": {variable}.id')
        if stored:
            body.append(f"    session.add_all([{', '.join(stored)}])")
            body.append("    session.commit()")
        body.append("    return {" + ", ".join(returned) + "}")
        if self.references:
            doc = f"The rows {self.values()['a_model_title']} refers to, stored for that organization (or user)."
        else:
            doc = f"{self.values()['a_model_title'].capitalize()} refers to no other row (the tests ask all the same)."
        text = render(
            "factory.py.tmpl",
            self.values()
            | {"factory_fields": "\n".join(lines), "references_doc": doc, "references_body": "\n".join(body)},
        )
        return imports, text
