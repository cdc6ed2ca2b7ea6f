"""Fixtures of the leads tests (the shared ones, agents and staff_api among them, are in tests/conftest.py)."""

import pytest


@pytest.fixture
def lead_id(agents):
    """A lead ingested by LILLy, at LeadGen, in progress."""
    body = {"company": "Acme GmbH", "email": "Anna@Acme.example", "source": "website"}
    response = agents["lilly"].post("/leads", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]
