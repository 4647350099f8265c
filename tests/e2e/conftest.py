"""Fixtures for end-to-end tests through the local stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import STANDIN_HANDLER, STANDIN_TEMPLATE


@pytest.fixture(scope="module")
def standin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("standin-root")
    (root / "template.yaml").write_text(STANDIN_TEMPLATE)
    (root / "functions" / "echo").mkdir(parents=True)
    (root / "functions" / "echo" / "app.py").write_text(STANDIN_HANDLER)
    (root / "routes.yaml").write_text("version: 1\n")
    return root
