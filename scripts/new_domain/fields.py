"""The field types `task new-domain` knows, and what each one writes: its column, its input
fields, its factory value and the values its generated tests send (valid and invalid).

A field is `name:type[:options]` on the command line:

| type       | options                  | column                      | required on create          |
|------------|--------------------------|-----------------------------|-----------------------------|
| `str`      | max length (200)         | string, indexed, sortable, searchable | yes (1+ characters) |
| `text`     | max length (10000)       | text                        | no (null)                   |
| `int`      | -                        | bigint, indexed, sortable   | yes                         |
| `bool`     | -                        | boolean                     | no (false)                  |
| `decimal`  | precision,scale (12,2)   | numeric, indexed, sortable  | yes                         |
| `datetime` | -                        | UTC timestamp, indexed, sortable | no (null; an offset is required) |
| `enum`     | its values (2 or more)   | string, indexed, sortable   | no (the first value)        |
| `fk`       | the domain it refers to  | uuid, indexed, ON DELETE CASCADE | yes                    |
"""

from dataclasses import dataclass, field

from scripts.new_domain.names import IDENTIFIER, SpecError, check_identifier

KINDS = ("str", "text", "int", "bool", "decimal", "datetime", "enum", "fk")
BIGINT = 2**63 - 1


@dataclass(frozen=True)
class Reference:
    """What an `fk` field refers to: another domain's table, read through that domain's service."""

    table: str
    model: str  # class name, `Project`
    model_module: str  # `app.domains.projects.models`
    service: str  # `ProjectService`
    service_module: str
    owner_field: str  # the column naming the referenced row's owner (`id` for users themselves)
    owned_by: str  # "organization" | "user"
    # Owned the way the referring domain is: the referenced row must have the same owner (else it
    # is enough that the actor sees it).
    same_owner: bool


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    max_length: int = 0
    precision: int = 0
    scale: int = 0
    values: tuple[str, ...] = ()
    reference: Reference | None = None
    # filled by the domain: the enum's class name
    enum_class: str = field(default="")

    # -- what the column is ----------------------------------------------------------------------

    @property
    def required(self) -> bool:
        """Required on create (and never null)."""
        return self.kind in {"str", "int", "decimal", "fk"}

    @property
    def nullable(self) -> bool:
        return self.kind in {"text", "datetime"}

    @property
    def sortable(self) -> bool:
        return self.kind in {"str", "int", "decimal", "datetime", "enum"}

    @property
    def searchable(self) -> bool:
        return self.kind == "str"

    def annotation(self) -> str:
        return {
            "str": "str",
            "text": "str | None",
            "int": "int",
            "bool": "bool",
            "decimal": "Decimal",
            "datetime": "datetime | None",
            "enum": self.enum_class,
            "fk": "UUID",
        }[self.kind]

    def model_line(self) -> str:
        """Its line in the `XBase` class the table and the schemas share."""
        arguments = {
            "str": f"min_length=1, max_length={self.max_length}, index=True",
            "text": f"default=None, max_length={self.max_length}, sa_type=sa.Text",
            "int": "ge=-(2**63), le=2**63 - 1, sa_type=sa.BigInteger, index=True",
            "bool": "default=False",
            "decimal": f"max_digits={self.precision}, decimal_places={self.scale}, index=True",
            "datetime": "default=None, index=True",
            "enum": f"default={self.enum_class}.{self.first_member}, sa_type=sa.String({self.enum_length}), index=True",
            "fk": f'foreign_key="{self.reference.table if self.reference else ""}.id", ondelete="CASCADE", index=True',
        }[self.kind]
        return f"{self.name}: {self.annotation()} = Field({arguments})"

    @property
    def first_member(self) -> str:
        """An enum's default: its first value's member."""
        return self.values[0].upper() if self.kind == "enum" else ""

    @property
    def enum_length(self) -> int:
        return max([16, *(len(value) for value in self.values)])

    def create_override(self) -> str | None:
        """A line `XCreate` declares instead of the base's (an instant must carry its offset)."""
        return f"{self.name}: AwareUTCDatetime = None" if self.kind == "datetime" else None

    def update_line(self) -> str:
        arguments = {
            "str": f"default=None, min_length=1, max_length={self.max_length}",
            "text": f"default=None, max_length={self.max_length}",
            "int": "default=None, ge=-(2**63), le=2**63 - 1",
            "decimal": f"default=None, max_digits={self.precision}, decimal_places={self.scale}",
        }.get(self.kind)
        if self.kind == "datetime":
            return f"{self.name}: AwareUTCDatetime = None"
        annotation = "str" if self.kind == "text" else self.annotation()
        # Optional only because a PATCH may leave it out: `null` is refused (and not documented).
        annotation = f"{annotation} | None" if self.nullable else f"Annotated[{annotation} | None, NOT_NULL]"
        if arguments is None:
            return f"{self.name}: {annotation} = None"
        return f"{self.name}: {annotation} = Field({arguments})"

    def enum_declaration(self, class_name: str) -> str:
        members = "\n".join(f'    {value.upper()} = "{value}"' for value in self.values)
        return f"class {class_name}(StrEnum):\n{members}\n"

    def factory_value(self) -> str | None:
        """The factory's value (None: the caller passes it, as it does the owner)."""
        return {
            "str": f"Use(lambda: TableFactory.__faker__.pystr(min_chars=1, max_chars={min(self.max_length, 20)}))",
            "text": "None",
            "int": "Use(TableFactory.__faker__.pyint)",
            "bool": "False",
            "decimal": f'Decimal("{self._decimal(1)}")',
            "datetime": "None",
            "enum": f"{self.enum_class}.{self.first_member}",
        }.get(self.kind)

    # -- what the generated tests send -----------------------------------------------------------

    def rising_values(self) -> list[str]:
        """Three valid values as Python source, each >= the one before (the list tests sort on
        them); None for a reference (made by the tests, per owner)."""
        words = ["alpha", "bravo", "charlie"]
        return {
            "str": [repr(word[: self.max_length]) for word in words],
            "text": [repr(f"{word} notes") if self.max_length >= 13 else repr(word[0]) for word in words],
            "int": ["1", "2", "3"],
            "bool": ["False", "True", "True"],
            "decimal": [repr(self._decimal(number)) for number in (1, 2, 3)],
            "datetime": [repr(f"2030-01-0{day}T09:30:00+00:00") for day in (1, 2, 3)],
            "enum": [repr(value) for value in self._rising_enum_values()],
        }.get(self.kind, [])

    def _rising_enum_values(self) -> list[str]:
        ordered = sorted(self.values)
        return [ordered[0], ordered[0], ordered[1]] if len(ordered) == 2 else ordered[:3]

    def _decimal(self, number: int) -> str:
        return f"{number}.{'5'.ljust(self.scale, '0')}" if self.scale else str(number)

    def invalid_values(self) -> list[tuple[str, str]]:
        """(case, value as Python source) that the input schemas refuse with a 400 naming the field."""
        cases = {
            "str": [
                ("empty", '""'),
                (f"of {self.max_length + 1} characters", f'"n" * {self.max_length + 1}'),
                ("not a string", "7"),
                ("with NUL", '"nu\\x00l"'),
            ],
            "text": [(f"of {self.max_length + 1} characters", f'"t" * {self.max_length + 1}'), ("with NUL", '"\\x00"')],
            "int": [("not a number", '"many"'), ("a fraction", "1.5"), ("past bigint", "2**63")],
            "bool": [("not a boolean", '"maybe"')],
            "decimal": [
                ("not a number", '"lots"'),
                (f"of more than {self.precision} digits", repr("9" * (self.precision + 1))),
                (
                    f"with more than {self.scale} decimals",
                    repr(f"0.{'1' * (self.scale + 1)}"),
                ),
            ],
            "datetime": [("not a date-time", '"tomorrow"'), ("without an offset", '"2030-01-01T09:30:00"')],
            "enum": [("unknown", '"unknown_value"'), ("in capitals", repr(self.first_member))],
            "fk": [("not a uuid", '"nothing"')],
        }[self.kind]
        if not self.nullable:
            cases.append(("null", "None"))
        return cases


def parse_field(spec: str) -> Field:
    """`title:str:120`, `notes:text`, `amount:decimal:12,2`, `status:enum:draft,sent,paid`,
    `project_id:fk:projects` (the reference is resolved by the domain, which knows the app)."""
    name, _, rest = spec.partition(":")
    kind, _, options = rest.partition(":")
    if not kind:
        raise SpecError(f"--field {spec!r}: write name:type[:options], type one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise SpecError(f"--field {spec!r}: unknown type {kind!r} (one of {', '.join(KINDS)})")
    check_field_name(name)
    if kind == "str":
        return Field(name, kind, max_length=_length(spec, options, 200, minimum=2))
    if kind == "text":
        return Field(name, kind, max_length=_length(spec, options, 10_000, minimum=1))
    if kind == "decimal":
        return Field(name, kind, **_precision(spec, options))
    if kind == "enum":
        return Field(name, kind, values=_enum_values(spec, options))
    if kind == "fk":
        if not name.endswith("_id"):
            raise SpecError(f"--field {spec!r}: a reference is named for what it refers to, ending in _id")
        if not options:
            raise SpecError(f"--field {spec!r}: name the domain it refers to, e.g. project_id:fk:projects")
        return Field(name, kind, values=(options,))
    if options:
        raise SpecError(f"--field {spec!r}: {kind} takes no options")
    return Field(name, kind)


# Columns every generated table has, or that its owner rule sets; and names pydantic or SQLModel
# models use themselves.
RESERVED_FIELDS = frozenset({"id", "created_at", "updated_at", "organization_id", "owner_id", "created_by"})


def check_field_name(name: str) -> None:
    check_identifier("field", name)
    if name in RESERVED_FIELDS:
        raise SpecError(f"field {name!r} is set by the generated code itself")
    if name.startswith("model_") or name in {"metadata", "registry", "schema", "json", "dict", "copy", "fields"}:
        raise SpecError(f"field {name!r} clashes with a pydantic or SQLModel attribute")


def _length(spec: str, options: str, default: int, minimum: int) -> int:
    if not options:
        return default
    if not options.isdigit() or not minimum <= int(options) <= 1_000_000:
        raise SpecError(f"--field {spec!r}: the max length is a number from {minimum} to 1000000")
    return int(options)


def _precision(spec: str, options: str) -> dict[str, int]:
    if not options:
        return {"precision": 12, "scale": 2}
    precision, _, scale = options.partition(",")
    if not (precision.isdigit() and scale.isdigit()):
        raise SpecError(f"--field {spec!r}: write decimal:precision,scale, e.g. decimal:12,2")
    digits, decimals = int(precision), int(scale)
    if not (1 <= digits <= 38 and 0 <= decimals < digits):
        raise SpecError(f"--field {spec!r}: precision from 1 to 38, scale below the precision")
    return {"precision": digits, "scale": decimals}


def _enum_values(spec: str, options: str) -> tuple[str, ...]:
    values = tuple(options.split(",")) if options else ()
    if len(values) < 2:
        raise SpecError(f"--field {spec!r}: list two values or more, e.g. status:enum:draft,sent,paid")
    if len(set(values)) != len(values):
        raise SpecError(f"--field {spec!r}: a value is listed twice")
    for value in values:
        if not IDENTIFIER.match(value):
            raise SpecError(f"--field {spec!r}: value {value!r} is not a lower-case identifier")
        if len(value) > 64:
            raise SpecError(f"--field {spec!r}: value {value!r} is longer than 64 characters")
    return values
