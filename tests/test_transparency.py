"""The transparency log: leaves in feed order, signed tree heads, proofs, store tampering."""

from __future__ import annotations

import base64
import hashlib
import math
import threading
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from domain import merkle
from domain.errors import ProofError
from domain.settings import Settings
from domain.signing import TreeHead, log_id_of, verify_tree_head
from projections.runtime import Runtime
from projections.transparency import NodeReader
from scripts.cli import main as casetrail
from tests.conftest import note, opened
from tests.test_tamper import delete, rewrite, stored_state, use_settings


def fill(client: TestClient, cases: int = 3, notes: int = 3) -> None:
    for number in range(cases):
        client.post(f"/v1/cases/c{number}/events", json=opened())
    for round_ in range(notes):
        for number in range(cases):
            client.post(f"/v1/cases/c{number}/events", json=note(f"note {round_}"))


def leaves_in_feed_order(runtime: Runtime) -> list[dict[str, Any]]:
    return list(runtime.log.iter_leaves())


def test_every_event_becomes_a_leaf_in_feed_order(client: TestClient, runtime: Runtime) -> None:
    fill(client)
    head = runtime.seal_now()
    feed = client.get("/v1/feed?limit=1000").json()["events"]

    leaves = leaves_in_feed_order(runtime)

    assert [leaf["leaf_index"] for leaf in leaves] == list(range(len(feed)))
    assert [leaf["position"] for leaf in leaves] == [event["position"] for event in feed]
    assert [leaf["event_hash"] for leaf in leaves] == [event["hash"] for event in feed]
    expected_root = merkle.root_of(
        [merkle.leaf_hash(bytes.fromhex(event["hash"])) for event in feed]
    )
    assert head is not None and head.root_hash == expected_root.hex()


def test_tree_heads_are_signed_by_the_ledger_key(client: TestClient, runtime: Runtime) -> None:
    fill(client)
    runtime.seal_now()

    head = TreeHead.from_json(client.get("/v1/log/tree-head").json())
    key = client.get("/v1/log/public-key").json()

    raw_key = base64.b64decode(key["key"])
    assert key["log_id"] == log_id_of(raw_key) == hashlib.sha256(raw_key).hexdigest()
    assert head.log_id == key["log_id"]
    verify_tree_head(head, raw_key)


def test_a_tree_head_every_n_events(settings: Settings) -> None:
    from dataclasses import replace

    with Runtime(replace(settings, seal_every_events=4, seal_every_seconds=3600)) as runtime:
        token, _ = runtime.api_keys.create("admin")
        from api.app import create_app

        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {token}"}) as c:
            fill(c, cases=2, notes=5)  # 12 events
            runtime.followers["transparency_log"].catch_up()
            sizes = [head.tree_size for head in runtime.log.all_tree_heads()]

    assert sizes and all(b - a >= 4 for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[0] >= 4


def test_tree_heads_history_pages_and_only_grows(client: TestClient, runtime: Runtime) -> None:
    for round_ in range(3):
        client.post(f"/v1/cases/h{round_}/events", json=opened())
        runtime.seal_now()

    history = client.get("/v1/log/tree-heads").json()["tree_heads"]
    after_first = client.get(f"/v1/log/tree-heads?after={history[0]['tree_size']}").json()

    sizes = [head["tree_size"] for head in history]
    assert sizes == sorted(set(sizes)) and len(sizes) == 3
    assert [h["tree_size"] for h in after_first["tree_heads"]] == sizes[1:]
    for older, newer in zip(history, history[1:], strict=False):
        proof = client.get(
            f"/v1/log/consistency?first={older['tree_size']}&second={newer['tree_size']}"
        ).json()
        merkle.verify_consistency(
            older["tree_size"],
            newer["tree_size"],
            [bytes.fromhex(p) for p in proof["proof"]],
            bytes.fromhex(older["root_hash"]),
            bytes.fromhex(newer["root_hash"]),
        )


def test_log_routes_are_public(client: TestClient, runtime: Runtime) -> None:
    fill(client, cases=1, notes=1)
    first = runtime.seal_now()
    client.post("/v1/cases/c0/events", json=note("one more"))
    second = runtime.seal_now()
    assert first is not None and second is not None
    no_key = {"Authorization": ""}

    for path in (
        "/v1/log/tree-head",
        "/v1/log/tree-heads",
        "/v1/log/public-key",
        "/v1/log/inclusion?position=1",
        f"/v1/log/consistency?first={first.tree_size}&second={second.tree_size}",
    ):
        assert client.get(path, headers=no_key).status_code == 200, path


def test_without_a_key_inclusion_proofs_do_not_name_cases(
    client: TestClient, runtime: Runtime
) -> None:
    """Walking the public positions must not list every agency's case ids."""
    fill(client)
    head = runtime.seal_now()
    assert head is not None
    no_key = {"Authorization": ""}
    other, _ = runtime.api_keys.create("agent", name="b", agency="agency-b")

    for position in range(1, head.tree_size + 1):
        answer = client.get(f"/v1/log/inclusion?position={position}", headers=no_key)
        assert answer.status_code == 200
        body = answer.json()
        assert "case_id" not in body and "seq" not in body
        assert '"c1"' not in answer.text and '"c2"' not in answer.text
        elsewhere = client.get(
            f"/v1/log/inclusion?position={position}", headers={"Authorization": f"Bearer {other}"}
        ).json()
        assert "case_id" not in elsewhere, "another agency's key learns no more"
        merkle.verify_inclusion(
            merkle.leaf_hash(bytes.fromhex(body["event_hash"])),
            body["leaf_index"],
            body["tree_head"]["tree_size"],
            [bytes.fromhex(p) for p in body["proof"]],
            bytes.fromhex(body["tree_head"]["root_hash"]),
        )


def test_inclusion_by_position_and_by_event_hash(client: TestClient, runtime: Runtime) -> None:
    fill(client)
    head = runtime.seal_now()
    assert head is not None
    event = client.get("/v1/cases/c1/events").json()["events"][2]
    position = next(
        e["position"]
        for e in client.get("/v1/feed?limit=1000").json()["events"]
        if e["hash"] == event["hash"]
    )

    by_position = client.get(f"/v1/log/inclusion?position={position}").json()
    by_event = client.get(
        f"/v1/log/inclusion?event={event['hash']}&tree_size={head.tree_size}"
    ).json()

    assert by_position == by_event
    assert by_position["case_id"] == "c1" and by_position["seq"] == 3  # the key may read c1
    merkle.verify_inclusion(
        merkle.leaf_hash(bytes.fromhex(event["hash"])),
        by_position["leaf_index"],
        by_position["tree_head"]["tree_size"],
        [bytes.fromhex(p) for p in by_position["proof"]],
        bytes.fromhex(by_position["tree_head"]["root_hash"]),
    )


def test_proofs_exist_only_for_signed_sizes(client: TestClient, runtime: Runtime) -> None:
    fill(client)
    head = runtime.seal_now()
    assert head is not None
    signed = {h.tree_size for h in runtime.log.all_tree_heads()}
    unsigned = next(size for size in range(head.tree_size, 0, -1) if size not in signed)

    responses = {
        "inclusion at an unsigned size": client.get(
            f"/v1/log/inclusion?position=1&tree_size={unsigned}"
        ),
        "consistency to an unsigned size": client.get(
            f"/v1/log/consistency?first=1&second={unsigned}"
        ),
    }
    for name, response in responses.items():
        assert response.status_code in (404, 400), name
    assert responses["inclusion at an unsigned size"].status_code == 404
    assert (
        responses["inclusion at an unsigned size"].json()["type"] == "/problems/tree-head-not-found"
    )


@pytest.mark.parametrize(
    "query",
    ["first=0&second=2", "first=3&second=2", "first=abc&second=2", "second=2"],
)
def test_bad_consistency_requests_are_400(client: TestClient, runtime: Runtime, query: str) -> None:
    fill(client, cases=1, notes=2)
    runtime.seal_now()

    response = client.get(f"/v1/log/consistency?{query}")

    assert response.status_code == 400
    assert response.json()["type"] == "/problems/invalid-parameter"


def test_leaf_index_not_below_the_size_is_400(client: TestClient, runtime: Runtime) -> None:
    client.post("/v1/cases/a/events", json=opened())
    small = runtime.seal_now()
    client.post("/v1/cases/b/events", json=opened())
    runtime.seal_now()
    assert small is not None
    late_position = client.get("/v1/feed").json()["events"][-1]["position"]

    response = client.get(f"/v1/log/inclusion?position={late_position}&tree_size={small.tree_size}")

    assert response.status_code == 400
    assert response.json()["pointer"] == "/query/tree_size"


def test_a_proof_for_size_five_stays_exact_while_others_append(
    live_server: Any, http: httpx.Client, runtime: Runtime
) -> None:
    for number in range(5):
        http.post(f"/v1/cases/p{number}/events", json=opened())
    five = runtime.seal_now()
    assert five is not None and five.tree_size == 5
    stop = threading.Event()

    def keep_appending() -> None:
        count = 0
        while not stop.is_set():
            http.post("/v1/cases/p0/events", json=note(f"more {count}"))
            count += 1

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        for _ in range(40):
            proof = http.get("/v1/log/inclusion?position=3&tree_size=5").json()
            elements = [bytes.fromhex(p) for p in proof["proof"]]
            assert len(elements) == merkle.inclusion_proof_length(proof["leaf_index"], 5)
            merkle.verify_inclusion(
                bytes.fromhex(proof["leaf_hash"]),
                proof["leaf_index"],
                5,
                elements,
                bytes.fromhex(five.root_hash),
            )
            runtime.seal_now()
    finally:
        stop.set()
        writer.join()
    assert runtime.log.tree_head().tree_size > 5  # type: ignore[union-attr]


def test_proofs_need_at_most_log2_n_node_reads(client: TestClient, runtime: Runtime) -> None:
    fill(client, cases=5, notes=6)  # 35 events
    head = runtime.seal_now()
    assert head is not None
    size = head.tree_size
    limit = math.ceil(math.log2(size))
    root = bytes.fromhex(head.root_hash)

    for index in range(size):
        reader = NodeReader(runtime.ledger.db)
        proof = runtime.log.inclusion_proof(index, size, reader)
        assert reader.reads <= limit
        leaf = runtime.log.db.query_one(
            "SELECT event_hash FROM log_leaves WHERE leaf_index = ?", [index]
        )
        merkle.verify_inclusion(
            merkle.leaf_hash(bytes.fromhex(leaf["event_hash"])), index, size, proof, root
        )  # type: ignore[index]


def test_the_sealer_survives_a_restart_and_a_rebuild(
    settings: Settings,
    client: TestClient,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill(client)
    before = runtime.seal_now()
    for follower in runtime.followers.values():
        follower.stop()
    use_settings(monkeypatch, settings)

    assert casetrail(["rebuild"]) == 0

    with Runtime(settings) as again:
        rebuilt = [leaf["event_hash"] for leaf in again.log.iter_leaves()]
        assert len(rebuilt) == before.tree_size  # type: ignore[union-attr]
        assert again.log.tree_head() == before
        token, _ = again.api_keys.create("admin")
        from api.app import create_app

        with TestClient(create_app(again), headers={"Authorization": f"Bearer {token}"}) as c:
            c.post("/v1/cases/c0/events", json=note("after restart"))
            after = again.seal_now()
    assert after is not None and after.tree_size == before.tree_size + 1  # type: ignore[union-attr]
    assert casetrail(["verify"]) == 0


def test_the_sealer_refuses_to_sign_a_tree_that_does_not_extend_the_last(
    client: TestClient, runtime: Runtime
) -> None:
    fill(client, cases=2, notes=1)
    runtime.seal_now()
    with runtime.ledger.db.transaction() as cursor:
        cursor.execute("UPDATE log_leaves SET event_hash = ? WHERE leaf_index = 0", ["ab" * 32])
        cursor.execute("DELETE FROM log_nodes")
    runtime.sealer.reload()
    client.post("/v1/cases/c0/events", json=note("one more"))

    with pytest.raises(Exception) as failure:
        runtime.seal_now()
    assert "refusing to sign" in str(failure.value) or "lacks stored node" in str(failure.value)


# -- store tampering that the chain alone cannot see ------------------------------------


def rewrite_and_rechain(runtime: Runtime, case_id: str, seq: int) -> None:
    """Rewrite one event and recompute every hash after it: the chain alone looks sound."""
    from domain.envelope import make_record, parse_stored

    length = len(list(runtime.iter_records(case_id)))
    previous_hash = None
    for current in range(seq, length + 1):
        record = parse_stored(stored_state(runtime, case_id, current), seq=current)
        assert isinstance(record, dict)
        envelope = {k: v for k, v in record.items() if k != "hash"}
        if current == seq:
            envelope["payload"] = {"text": "rewritten after the fact"}
        else:
            envelope["prev_hash"] = previous_hash
        new_record, stored = make_record(envelope)
        rewrite(runtime, case_id, current, stored)
        previous_hash = new_record["hash"]


def delete_case(runtime: Runtime, case_id: str) -> None:
    for seq in range(len(list(runtime.iter_records(case_id))), 0, -1):
        delete(runtime, case_id, seq)


STORE_TAMPERINGS = {
    "an event rewritten with its chain recomputed": (
        lambda r: rewrite_and_rechain(r, "c1", 2),
        "c1",
        2,
        "rewritten after it was sealed",
    ),
    "a whole case deleted": (lambda r: delete_case(r, "c2"), "c2", 1, "missing from the store"),
    "the last events of a case deleted": (
        lambda r: (delete(r, "c0", 4), delete(r, "c0", 3)),
        "c0",
        3,
        "missing from the store",
    ),
}


@pytest.mark.parametrize("name", sorted(STORE_TAMPERINGS))
def test_casetrail_verify_finds_what_the_chain_cannot(
    settings: Settings,
    client: TestClient,
    runtime: Runtime,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tamper, case_id, seq, reason = STORE_TAMPERINGS[name]
    fill(client)
    runtime.seal_now()
    for follower in runtime.followers.values():
        follower.stop()
    tamper(runtime)
    use_settings(monkeypatch, settings)

    assert casetrail(["verify"]) == 1

    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(f"FAIL {case_id} ")]
    assert lines and lines[0].startswith(f"FAIL {case_id} seq {seq}:"), out
    assert reason in lines[0]


def test_verify_endpoint_sees_a_rewritten_head_and_a_truncation(
    client: TestClient, runtime: Runtime
) -> None:
    fill(client)
    runtime.seal_now()
    rewrite_and_rechain(runtime, "c1", 4)
    delete(runtime, "c0", 4)

    rewritten = client.get("/v1/cases/c1/verify").json()
    truncated = client.get("/v1/cases/c0/verify").json()

    assert (
        rewritten == {"ok": False, "first_bad_seq": 4, "reason": rewritten["reason"]}
        and "rewritten" in rewritten["reason"]
    )
    assert truncated["ok"] is False and truncated["first_bad_seq"] == 4
    assert client.get("/v1/cases/c1/events").status_code == 500
    assert client.get("/v1/cases/c0/events").status_code == 500
    assert client.get("/v1/cases/c0/events?after_seq=3").status_code == 500


def test_an_append_at_a_truncated_cases_old_length_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    fill(client)
    runtime.seal_now()
    delete(runtime, "c0", 4)

    response = client.post(
        "/v1/cases/c0/events", json={"events": [note("fill the gap")], "expected_seq": 3}
    )

    assert response.status_code == 500
    assert response.json()["type"] == "/problems/integrity-failure"
    assert len(list(runtime.iter_records("c0"))) == 3


def test_proof_verification_api_takes_the_size_from_the_signed_head() -> None:
    # The library refuses a valid (5, 7) proof presented for size 4.
    leaves = [merkle.leaf_hash(bytes([n])) for n in range(7)]

    def node(level: int, index: int) -> bytes:
        return merkle.root_of(leaves[index << level : (index + 1) << level])

    proof = merkle.inclusion_proof(5, 7, node)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaves[5], 5, 4, proof, merkle.root_of(leaves[:4]))
