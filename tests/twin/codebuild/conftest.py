"""Fixtures of the buildspec twin (helpers: cbtwin.py).

Each test (or module, for tests that launch nothing) gets its own moto and
SSM proxy on 127.0.0.1, and the stack's resources in them.
"""

import pytest
from cbtwin import start_twin, stop


@pytest.fixture
def twin_factory(tmp_path):
    """Starts a twin whose SSM proxy gets the given options."""
    procs = []
    yield lambda *proxy_args: start_twin(tmp_path, procs, *proxy_args)
    stop(procs)


@pytest.fixture(scope="module")
def module_twin(tmp_path_factory):
    """One twin for a whole module, for tests that launch nothing."""
    procs = []
    yield start_twin(tmp_path_factory.mktemp("twin"), procs)
    stop(procs)


@pytest.fixture
def twin(twin_factory):
    """A twin whose SSM stand-in passes every check."""
    return twin_factory()
