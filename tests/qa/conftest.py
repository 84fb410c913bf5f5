"""Fixtures of the quality-check tests."""

from __future__ import annotations

import pytest
from qa_scenes import truth_table


@pytest.fixture(scope="session")
def ordinary_truth():
    """An ordinary field (500 stars, 15 galaxies) around the tests' own centre."""
    return truth_table(31)
