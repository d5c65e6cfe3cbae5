"""Fixtures of the privacy tests: the secure-aggregation spaces (tests/privacy/secagg_space.py), made once."""

from __future__ import annotations

import pytest
from secagg_space import Spaces, make_spaces


@pytest.fixture(scope="session")
def spaces(tmp_path_factory: pytest.TempPathFactory) -> Spaces:
    """A data space of seven nodes and a foreign one (see secagg_space.make_spaces)."""
    return make_spaces(tmp_path_factory.mktemp("secagg"))
