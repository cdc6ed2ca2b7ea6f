"""API tokens: random, shown once, stored as a visible prefix and a keyed hash, revocable."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from eidolons.models import ApiToken
from eidolons.services import api_token_authenticate, api_token_issue, api_token_revoke


def test_a_token_is_stored_only_as_prefix_and_keyed_hash(mike):
    token, raw = api_token_issue(eidolon=mike, name="cor-daemon")

    assert raw.startswith(f"mxp_{token.prefix}_") and len(raw) > 40
    stored = ApiToken.objects.filter(pk=token.pk).values()[0]
    assert raw not in str(stored), "the token itself is nowhere in the row"
    assert len(token.digest) == 64


def test_two_tokens_differ(mike):
    assert api_token_issue(eidolon=mike)[1] != api_token_issue(eidolon=mike)[1]


def test_authenticate_accepts_the_token_and_records_last_use(mike):
    token, raw = api_token_issue(eidolon=mike)
    found = api_token_authenticate(raw)
    assert found == token and found.last_used_at is not None


@pytest.mark.parametrize("mangle", [lambda r: r[:-1] + ("A" if r[-1] != "A" else "B"), lambda r: r + "x",
                                    lambda r: r.replace("mxp_", "abc_"), lambda r: "", lambda r: "mxp__x"])
def test_authenticate_refuses_a_token_that_is_not_exactly_the_one_issued(mike, mangle):
    _, raw = api_token_issue(eidolon=mike)
    assert api_token_authenticate(mangle(raw)) is None


def test_the_hash_is_keyed_with_the_secret_key(mike, settings):
    _, raw = api_token_issue(eidolon=mike)
    settings.SECRET_KEY = "another-secret-key-" * 3
    assert api_token_authenticate(raw) is None, "a database copy without the key cannot check tokens"


def test_a_revoked_token_is_refused_and_revoking_again_keeps_the_first_time(mike):
    token, raw = api_token_issue(eidolon=mike)
    first = api_token_revoke(token=token).revoked_at
    again = api_token_revoke(token=token).revoked_at
    assert api_token_authenticate(raw) is None and first == again


def test_last_use_is_written_at_most_once_a_minute(mike, django_assert_num_queries):
    token, raw = api_token_issue(eidolon=mike)
    api_token_authenticate(raw)
    with django_assert_num_queries(1):
        api_token_authenticate(raw)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timezone.timedelta(minutes=2))
    with django_assert_num_queries(2):
        api_token_authenticate(raw)


def test_issue_token_command_prints_a_working_token_once(mike):
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", "Mike", "--agent", "codex", "--name", "CT202", stdout=out, stderr=err)

    raw = out.getvalue().strip()
    token = api_token_authenticate(raw)
    assert token.eidolon == mike and token.agent.kind == "codex" and token.name == "CT202"
    assert "shown once" in err.getvalue()


def test_issue_token_command_names_the_known_eidolons_when_it_does_not_know_one(mike):
    with pytest.raises(CommandError, match=r"Known: .*mike"):
        call_command("issue_token", "Zed", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="no 'siri' agent"):
        call_command("issue_token", "mike", "--agent", "siri", stdout=io.StringIO(), stderr=io.StringIO())
