"""Stage artifacts: files and texts in the seed's per-lead layout, with size, checksum and uploader."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from leads.models import StageArtifact


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def test_a_file_upload_is_stored_in_the_stage_folder_with_size_checksum_and_uploader(agents, lead_id, tmp_path):
    content = b"%PDF-1.7 mock contract"
    response = agents["lilly"].upload(
        f"/leads/{lead_id}/artifacts",
        {"file": SimpleUploadedFile("profile.pdf", content, content_type="application/pdf"), "agent": "gemini"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["path"] == f"max-pipeline/{lead_id}/stage-1-leadgen/profile.pdf"
    assert (body["kind"], body["size"], body["checksum"]) == ("file", len(content), hashlib.sha256(content).hexdigest())
    assert body["uploaded_by"] == "LILLy/gemini"
    assert (tmp_path / body["path"]).read_bytes() == content
    listed = agents["lilly"].get(f"/leads/{lead_id}/artifacts").json()
    assert [a["name"] for a in listed] == ["profile.pdf"]


def test_an_eidolon_adds_artifacts_only_to_leads_in_its_own_stage(agents, lead_id, tmp_path):
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {})

    response = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": "late.md", "text": "too late"})

    assert response.status_code == 403
    assert (response.json()["error"], response.json()["stage"]) == ("forbidden", "FirstResponder")
    assert StageArtifact.objects.count() == 0
    assert not list(tmp_path.rglob("late.md"))


def test_an_upload_over_the_limit_is_refused_and_leaves_no_file(agents, lead_id, settings, tmp_path):
    settings.MAXPORTAL_ARTIFACT_MAX_BYTES = 10
    response = agents["lilly"].upload(
        f"/leads/{lead_id}/artifacts", {"file": SimpleUploadedFile("big.bin", b"x" * 11)}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid" and list(response.json()["fields"]) == ["file"]
    assert not list(tmp_path.rglob("big.bin"))


@pytest.mark.parametrize("name", ["../escape.md", "a/b.md", ".hidden", "", "x" * 201])
def test_a_name_that_is_not_a_plain_file_name_is_refused(agents, lead_id, name):
    response = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": name, "text": "x"})
    assert response.status_code == 422, response.content
    assert StageArtifact.objects.count() == 0


def test_the_same_name_twice_in_one_stage_is_409(agents, lead_id):
    agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": "notes.md", "text": "one"})
    response = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": "notes.md", "text": "two"})
    assert response.status_code == 409
    assert (response.json()["error"], response.json()["stage"]) == ("conflict", "LeadGen")


def test_neither_file_nor_text_is_refused(agents, lead_id):
    response = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": "empty.md"})
    assert response.status_code == 422 and "file" in response.json()["fields"]


def test_an_artifact_is_downloaded_by_those_who_see_the_lead_only(agents, lead_id):
    up = agents["lilly"].upload(f"/leads/{lead_id}/artifacts",
                                {"file": SimpleUploadedFile("brief.txt", b"the brief", content_type="text/plain")})
    artifact_id = up.json()["id"]
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {})

    mine = agents["mike"].get(f"/leads/{lead_id}/artifacts/{artifact_id}/content")
    other = agents["clara"].get(f"/leads/{lead_id}/artifacts/{artifact_id}/content")

    assert mine.status_code == 200 and b"".join(mine.streaming_content) == b"the brief"
    assert other.status_code == 404, "Clara never saw this lead"
