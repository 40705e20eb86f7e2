"""The layering rules, checked on the real code."""

import subprocess
import sys

import pytest

from app.infrastructure.config import PROJECT_ROOT


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    return {name.split(".")[0] for name in result.stdout.split()} | set(result.stdout.split())


def test_import_linter_contract_is_kept() -> None:
    result = subprocess.run(["lint-imports"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_domains_load_no_adapter_nor_workflow_engine() -> None:
    """(advanced-alchemy itself loads parts of litestar when it is installed, so "no litestar in
    app.domains" is checked on our own imports, by the import-linter contract above.)"""
    loaded = _modules_loaded_by("import app.models, app.domains.users.service, app.bootstrap")
    assert not loaded & {"prefect", "app.api", "app.workers"}


def test_the_api_does_not_pay_for_prefect() -> None:
    """`import prefect` costs over a second and ~70 packages: it stays out of the API's path."""
    assert "prefect" not in _modules_loaded_by("import app.api.main")


def test_a_route_that_would_not_verify_credentials_stops_the_app(monkeypatch, tmp_path) -> None:
    """The credential middleware reads a credential; only the routing decorators verify it."""
    import litestar

    from app.api import main
    from tests.helpers import settings_for

    @litestar.get("/api/reports/plain", sync_to_thread=False)
    def plain() -> dict[str, str]:
        return {"secret": "data"}

    monkeypatch.setattr(main, "controllers", [*main.controllers, plain])
    with pytest.raises(RuntimeError, match=r"/api/reports/plain \(plain\) does not verify credentials"):
        main.create_app(settings_for(f"sqlite:///{tmp_path / 'app.db'}"))
