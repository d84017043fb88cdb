"""Dispute bundles: exported by the ledger, verified offline, tampered copies rejected."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from domain.bundle import BundleCheckFailed, parse_bundle, verify_bundle
from domain.settings import Settings
from domain.signing import LedgerKey
from projections.runtime import Runtime
from scripts.cli import main as casetrail
from tests.conftest import event, note, opened
from tests.test_tamper import use_settings

CORPUS = Path(__file__).parent / "data" / "bundles"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
TRUSTED_KEY = base64.b64decode((CORPUS / "public-key.txt").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_tamper_corpus_is_rejected_by_the_right_check(name: str) -> None:
    expected = MANIFEST[name]
    raw = (CORPUS / name).read_bytes()

    if not expected:
        report = verify_bundle(parse_bundle(raw), trusted_public_key=TRUSTED_KEY)
        assert report.events == 5
        return
    with pytest.raises(BundleCheckFailed) as failure:
        # The bundle's own key, so that the checks after the key's are reached.
        verify_bundle(parse_bundle(raw), trust_bundle_key=True)
    assert failure.value.check == expected


@pytest.mark.parametrize("name", ["wrong-key.json", "wrong-key-with-its-log-id.json"])
def test_a_bundle_signed_by_another_key_fails_against_the_trusted_key(name: str) -> None:
    with pytest.raises(BundleCheckFailed) as failure:
        verify_bundle(parse_bundle((CORPUS / name).read_bytes()), trusted_public_key=TRUSTED_KEY)
    assert failure.value.check == "public-key"


def test_an_identity_point_as_trusted_key_is_refused_before_any_signature_check() -> None:
    with pytest.raises(BundleCheckFailed) as failure:
        verify_bundle(
            parse_bundle((CORPUS / "sound.json").read_bytes()),
            trusted_public_key=b"\x01" + bytes(31),
        )
    assert failure.value.check == "public-key"


def test_the_corpus_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "scripts/make_tamper_corpus.py", "--out", str(tmp_path)],
        check=True,
        cwd=Path(__file__).parent.parent,
        capture_output=True,
    )

    for name in [*MANIFEST, "manifest.json", "public-key.txt"]:
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name


def test_the_verifier_ships_without_the_server_or_the_database() -> None:
    code = (
        "import sys, domain.bundle, domain.merkle\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'eventsourcing', 'sqlite3', 'psycopg', 'uvicorn', 'projections', 'api')]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert result.stdout.strip() == ""


@pytest.fixture
def sale(client: TestClient) -> str:
    client.post(
        "/v1/cases/sale-1/events",
        json={"events": [opened(), note("called"), event("note.added", {"text": "met"})]},
    )
    client.post("/v1/cases/other/events", json={"events": [opened(), note()]})
    client.post("/v1/cases/sale-1/events", json=note("sent the notice"))
    return "sale-1"


def test_bundle_over_http_verifies_offline(client: TestClient, runtime: Runtime, sale: str) -> None:
    response = client.get(f"/v1/cases/{sale}/bundle")

    assert response.status_code == 200
    bundle = response.json()
    assert runtime.signing_key is not None
    report = verify_bundle(bundle, trusted_public_key=runtime.signing_key.public_key)
    assert report.events == 4
    assert report.tree_size >= 6
    assert [entry["record"]["seq"] for entry in bundle["events"]] == [1, 2, 3, 4]


def test_bundle_verifies_against_a_later_tree_head(
    client: TestClient, runtime: Runtime, sale: str
) -> None:
    bundle = client.get(f"/v1/cases/{sale}/bundle").json()
    client.post("/v1/cases/other/events", json=note("later"))
    later = runtime.seal_now()
    assert later is not None
    first, second = bundle["tree_head"]["tree_size"], later.tree_size
    proof = client.get(f"/v1/log/consistency?first={first}&second={second}").json()

    key = runtime.signing_key.public_key  # type: ignore[union-attr]
    report = verify_bundle(
        bundle,
        trusted_public_key=key,
        later_tree_head=later.as_json(),
        consistency_proof={"first": first, "second": second, "proof": proof["proof"]},
    )
    assert report.later_tree_size == second

    forged = dict(later.as_json(), root_hash="0" * 64)
    with pytest.raises(BundleCheckFailed) as failure:
        verify_bundle(
            bundle,
            trusted_public_key=key,
            later_tree_head=forged,
            consistency_proof={"first": first, "second": second, "proof": proof["proof"]},
        )
    assert failure.value.check == "signature"


def test_export_and_verify_bundle_from_the_command_line(
    settings: Settings,
    client: TestClient,
    sale: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_settings(monkeypatch, settings)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sale.bundle.json"
    key_file = tmp_path / "ledger.pub"
    key_file.write_text(client.get("/v1/log/public-key").json()["pem"])

    assert casetrail(["export", sale, "--out", "sale.bundle.json"]) == 0
    assert casetrail(["verify-bundle", str(out), "--public-key", str(key_file)]) == 0
    assert "bundle sound" in capsys.readouterr().out

    tampered = out.read_text().replace("sent the notice", "sent the letter")
    (tmp_path / "tampered.json").write_text(tampered)
    assert casetrail(["verify-bundle", "tampered.json", "--public-key", str(key_file)]) == 1
    assert capsys.readouterr().out.startswith("FAIL event-hash")


def test_verify_bundle_takes_the_public_key_response_saved_as_it_is(
    settings: Settings,
    client: TestClient,
    sale: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's `curl …/v1/log/public-key > key.json`, then --public-key key.json."""
    use_settings(monkeypatch, settings)
    monkeypatch.chdir(tmp_path)
    served = client.get("/v1/log/public-key")
    (tmp_path / "key.json").write_bytes(served.content)
    mixed = dict(served.json(), pem=LedgerKey.create(str(tmp_path / "other.pem")).public_key_pem())
    (tmp_path / "mixed.json").write_text(json.dumps(mixed))

    assert casetrail(["export", sale, "--out", "sale.bundle.json"]) == 0
    capsys.readouterr()
    assert casetrail(["verify-bundle", "sale.bundle.json", "--public-key", "key.json"]) == 0
    assert "bundle sound" in capsys.readouterr().out
    assert casetrail(["verify-bundle", "sale.bundle.json", "--public-key", "mixed.json"]) == 1
    assert "FAIL public-key" in capsys.readouterr().out


@pytest.mark.parametrize(
    "target",
    [
        "../escape.json",
        "/etc/casetrail.json",
        "nofolder/x.json",
        "existing.json",
        "link.json",
        "%2e%2e/escape.json",
        "..%2fescape.json",
        "./../escape.json",
    ],
)
def test_export_refuses_unsafe_paths(
    settings: Settings,
    client: TestClient,
    sale: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    use_settings(monkeypatch, settings)
    work = tmp_path / "work"
    work.mkdir()
    (work / "existing.json").write_text("keep me")
    (work / "link.json").symlink_to(tmp_path / "outside.json")
    monkeypatch.chdir(work)

    with pytest.raises(SystemExit):
        casetrail(["export", sale, "--out", target])

    assert (work / "existing.json").read_text() == "keep me"
    assert not (tmp_path / "outside.json").exists()
    assert not (tmp_path / "escape.json").exists()


@pytest.mark.parametrize("case_id", ["..", "%2e%2e", "..%2f..%2fetc", "a%2f..%2f..%2fb"])
def test_bundle_endpoint_refuses_path_tricks(client: TestClient, sale: str, case_id: str) -> None:
    response = client.get(f"/v1/cases/{case_id}/bundle")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_keys_init_creates_owner_only_key_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CASETRAIL_MASTER_KEY_PATH", str(tmp_path / "keys" / "master.key"))
    monkeypatch.setenv("CASETRAIL_SIGNING_KEY_PATH", str(tmp_path / "keys" / "signing.pem"))
    monkeypatch.setenv("CASETRAIL_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite'}")

    assert casetrail(["keys", "init"]) == 0

    printed = capsys.readouterr().out
    for name in ("master.key", "signing.pem"):
        mode = stat.S_IMODE(os.stat(tmp_path / "keys" / name).st_mode)
        assert mode == 0o600
    pem = (tmp_path / "keys" / "signing.pem").read_text()
    assert pem.splitlines()[1] not in printed  # the private key never reaches the output
    assert casetrail(["keys", "init"]) == 0
    assert "already exist" in capsys.readouterr().out
