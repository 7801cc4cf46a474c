"""Fixtures for the model tests: IRIS's published example messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "iris-examples"

VALID_EXAMPLES = sorted(
    path.name for path in EXAMPLES.glob("*.json") if ".as-published." not in path.name
)
AS_PUBLISHED = ["order-request.as-published.json", "order-update.as-published.json"]


def example_bytes(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def example_document(name: str) -> dict:
    return json.loads(example_bytes(name))


@pytest.fixture
def order_document() -> dict:
    """The corrected published NW OrderRequest as a dict, fresh for each test."""
    return example_document("order-request.corrected.json")


@pytest.fixture
def result_document() -> dict:
    """The published OrderResult as a dict, fresh for each test."""
    return example_document("order-result.json")
