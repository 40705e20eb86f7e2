"""README's "Adding a domain" stays followable: `scripts/try_adding_a_domain.py` follows it for real
(minutes: lint, typecheck and tests in a copy); these checks are the fast part of it, run with the suite."""

import ast
import difflib

import pytest

from app.infrastructure.config import PROJECT_ROOT
from scripts.try_adding_a_domain import DOMAIN, OWN_FILES, merge_into, recipe_files
from tests.test_domain_layout import LAYOUT

README = (PROJECT_ROOT / "README.md").read_text()


def test_readme_shows_every_file_of_the_domain_and_the_two_registry_edits() -> None:
    files = recipe_files(README)
    folder = f"app/domains/{DOMAIN}/"
    domain = {path.removeprefix(folder) for path in files if path.startswith(folder)}
    assert domain >= LAYOUT, sorted(LAYOUT - domain)
    outside = {path for path in files if not OWN_FILES.match(path)}
    assert outside == {"app/models.py", "app/api/controllers.py"}
    for path, code in files.items():
        ast.parse(code, path)


def test_the_example_domain_is_not_one_the_app_has() -> None:
    """Followed in this tree, the recipe writes only new files (besides the two registries)."""
    files = recipe_files(README)
    existing = {path for path in files if (PROJECT_ROOT / path).exists()}
    assert existing == {"app/models.py", "app/api/controllers.py"}
    assert not (PROJECT_ROOT / "app" / "domains" / DOMAIN).exists()


def _controller_names(source: str) -> list[str]:
    (assigned,) = [
        node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "controllers"
    ]
    assert isinstance(assigned, ast.List)
    return [ast.unparse(entry) for entry in assigned.elts]


def test_the_registry_edits_apply_to_the_files_as_they_are() -> None:
    """README's lines for the two registries join them as a person would type them: the import
    beside the others, the controller at the end of the list; nothing else changes."""
    files = recipe_files(README)
    for path in ("app/models.py", "app/api/controllers.py"):
        before = (PROJECT_ROOT / path).read_text()
        after = merge_into(before, files[path])
        ast.parse(after, path)
        diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
        assert [line for line in diff if line.startswith("- ")] == []
        added = {line[2:] for line in diff if line.startswith("+ ")}
        shown = {line for line in files[path].splitlines() if line.strip()} - set(before.splitlines())
        assert added == shown - {"    ...,"}, (added, shown)
    controllers = (PROJECT_ROOT / "app/api/controllers.py").read_text()
    merged = merge_into(controllers, files["app/api/controllers.py"])
    assert _controller_names(merged) == [*_controller_names(controllers), "NoteController"]


def test_an_entry_added_to_a_list_takes_its_indentation_and_keeps_the_rest() -> None:
    existing = "from a import A\n\nitems = [\n    A,  # the first\n]\n\nother = 1\n"
    block = "from b import B\n\nitems = [..., B]\n"
    assert (
        merge_into(existing, block)
        == "from a import A\nfrom b import B\n\nitems = [\n    A,  # the first\n    B,\n]\n\nother = 1\n"
    )
    with pytest.raises(ValueError, match="one entry a line"):
        merge_into("from a import A\nitems = [A]\n", block)
    with pytest.raises(ValueError, match="neither an import"):
        merge_into(existing, "items = [B]\n")
