"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from rtenhance.train.corpus import Corpus
from tests.train.helpers import make_tiny_corpora


@pytest.fixture(scope="session")
def tiny_corpora() -> tuple[Corpus, Corpus]:
    return make_tiny_corpora()
