"""Fixtures shared by test modules."""
import pytest

from tests import serving_helpers as sh


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory) -> str:
    """One untrained export of the real serving graph, made once per session (tens of
    seconds); modules copy it into their own model folders."""
    root = tmp_path_factory.mktemp("exported")
    return sh.export_model(str(root / "model"), str(root / "work"))
