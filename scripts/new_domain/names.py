"""How a domain is named: NAME is the plural (the table, the package, the route), its singular
names the class (`invoices` -> `Invoice`), and neither may clash with Python, SQL or the app."""

import builtins
import keyword
import re
from dataclasses import dataclass
from functools import cache

IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# Names the generated route module uses for itself.
TAKEN_BY_THE_TEMPLATES = frozenset({"params", "public", "data", "read", "write", "base"})


class SpecError(ValueError):
    """A name, a field or an option the generator refuses (the message says why)."""


@cache
def sql_reserved() -> frozenset[str]:
    """Words PostgreSQL, SQLite or standard SQL reserve (as SQLAlchemy lists them)."""
    from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as POSTGRES  # noqa: PLC0415
    from sqlalchemy.dialects.sqlite.base import SQLiteIdentifierPreparer  # noqa: PLC0415
    from sqlalchemy.sql.compiler import RESERVED_WORDS as STANDARD  # noqa: PLC0415

    return frozenset(POSTGRES) | frozenset(SQLiteIdentifierPreparer.reserved_words) | frozenset(STANDARD)


def singular_of(plural: str) -> str | None:
    """The singular of a regular English plural (`invoices`, `categories`, `boxes`, `line_items`);
    None when the name does not read as one (pass --singular)."""
    head, _, last = plural.rpartition("_")
    prefix = f"{head}_" if head else ""
    if last.endswith("ies") and len(last) > 3:
        return f"{prefix}{last[:-3]}y"
    if last.endswith(("sses", "xes", "zes", "ches", "shes")):
        return f"{prefix}{last[:-2]}"
    if last.endswith("s") and not last.endswith(("ss", "us", "is")) and len(last) > 1:
        return f"{prefix}{last[:-1]}"
    return None


def camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


@dataclass(frozen=True)
class Names:
    plural: str  # `line_items`: table, package, module, tag
    singular: str  # `line_item`

    @property
    def model(self) -> str:
        return camel(self.singular)  # LineItem

    @property
    def models(self) -> str:
        return camel(self.plural)  # LineItems

    @property
    def constant(self) -> str:
        return self.plural.upper()  # LINE_ITEMS

    @property
    def url(self) -> str:
        return f"/api/{self.plural.replace('_', '-')}"

    @property
    def title(self) -> str:
        return self.plural.replace("_", " ")  # line items

    @property
    def singular_title(self) -> str:
        return self.singular.replace("_", " ")


def check_identifier(what: str, name: str) -> None:
    if not IDENTIFIER.match(name):
        raise SpecError(f"{what} {name!r}: lower-case letters, digits and single underscores, starting with a letter")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise SpecError(f"{what} {name!r} is a Python keyword")
    if name in sql_reserved():
        raise SpecError(f"{what} {name!r} is a reserved word in SQL")


def domain_names(plural: str, singular: str | None) -> Names:
    check_identifier("NAME", plural)
    if hasattr(builtins, plural):
        raise SpecError(f"NAME {plural!r} is a Python builtin")
    if plural in TAKEN_BY_THE_TEMPLATES:
        raise SpecError(f"NAME {plural!r} is a name the generated routes use for something else")
    derived = singular_of(plural)
    if singular is None:
        if derived is None:
            raise SpecError(
                f"NAME {plural!r} does not read as a plural: name the table in the plural (invoices), "
                "or give its singular with --singular"
            )
        singular = derived
    check_identifier("--singular", singular)
    if singular == plural:
        raise SpecError(f"the singular and the plural are both {plural!r}: the class and the table need two names")
    if hasattr(builtins, singular) or singular in TAKEN_BY_THE_TEMPLATES:
        raise SpecError(f"the singular {singular!r} clashes with a name the generated code uses")
    return Names(plural, singular)
