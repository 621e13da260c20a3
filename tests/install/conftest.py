"""Fixtures of the tests/install suite; the harness is install_harness.py."""
import pytest

from install_harness import InstalledAsya, install_into


@pytest.fixture(scope="session")
def prefix(tmp_path_factory):
    """The build installed into a fresh prefix, once per session (per xdist worker)."""
    return install_into(tmp_path_factory.mktemp("prefix"))


@pytest.fixture
def installed_asya(prefix, tmp_path):
    asya = InstalledAsya(prefix / "bin", tmp_path / "work")
    yield asya
    asya.down()
