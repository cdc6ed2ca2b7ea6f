import pytest
from django.core.cache import cache

from tests.agents_api import AgentClient, clients_for, issue_tokens


@pytest.fixture
def agents(max_plan):
    """An API client per Eidolon (slug -> AgentClient), each with its own bearer token."""
    return clients_for(issue_tokens())


@pytest.fixture
def staff_api(staff_client):
    """The API as a logged-in staff user (session cookie)."""
    return AgentClient(client=staff_client)


@pytest.fixture
def lead_id(agents):
    """A lead ingested by LILLy, at LeadGen, in progress."""
    body = {"company": "Acme GmbH", "email": "Anna@Acme.example", "source": "website"}
    response = agents["lilly"].post("/leads", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture(autouse=True)
def _inbox_on_the_request_thread(request, settings):
    """Tests inside one uncommitted transaction read the inbox on the test's own connection;
    the transactional (real server) tests keep the production thread pool."""
    if "transactional_db" not in request.fixturenames and "live_server" not in request.fixturenames:
        settings.MAXPORTAL_INBOX_THREAD_POOL = False
    cache.clear()  # rate-limit counters of token ids an earlier test used
