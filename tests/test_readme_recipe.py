"""README's "Adding a domain" stays followable: `scripts/try_adding_a_domain.py` follows it for real
(minutes: lint, typecheck and tests in a copy); these checks are the fast part of it, run with the suite."""

import ast

from app.infrastructure.config import PROJECT_ROOT
from scripts.try_adding_a_domain import OWN_FILES, merge_into, recipe_files
from tests.test_domain_layout import LAYOUT

README = (PROJECT_ROOT / "README.md").read_text()


def test_readme_shows_every_file_of_the_domain_and_the_two_registry_edits() -> None:
    files = recipe_files(README)
    domain = {path.removeprefix("app/domains/projects/") for path in files if path.startswith("app/domains/projects/")}
    assert domain >= LAYOUT, sorted(LAYOUT - domain)
    outside = {path for path in files if not OWN_FILES.match(path)}
    assert outside == {"app/models.py", "app/api/controllers.py"}
    for path, code in files.items():
        ast.parse(code, path)


def test_the_registry_edits_apply_to_the_files_as_they_are() -> None:
    """README's lines for the two registries join them and replace only the list they redefine (in
    this tree, or in one where the domain was already added)."""
    files = recipe_files(README)
    for path in ("app/models.py", "app/api/controllers.py"):
        before = (PROJECT_ROOT / path).read_text()
        after = merge_into(before, files[path])
        ast.parse(after, path)
        given = set(files[path].splitlines()) - {""}
        assert given <= set(after.splitlines())
        assert set(after.splitlines()) - set(before.splitlines()) <= given
        replaced = set(before.splitlines()) - set(after.splitlines())
        assert all(line.startswith("controllers = ") for line in replaced), replaced
