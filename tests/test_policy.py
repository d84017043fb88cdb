"""The policy format: shipped policies, loader errors (file, line, field), hashes, overlays."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from domain.policy import (
    BASIS_TAGS,
    POLICY_DIR,
    PolicyError,
    available_policies,
    load_policy,
    load_policy_file,
    parse_duration,
)

BEIJING = timezone(timedelta(hours=8))

# DOMAIN.md §2.3: the thirty obligations of the China baseline draft.
DOMAIN_IDS = [
    "CN-INT-01",
    "CN-INT-02",
    "CN-LIC-01",
    "CN-LIC-02",
    "CN-LIC-03",
    "CN-CON-01",
    "CN-CON-02",
    "CN-DIS-01",
    "CN-DIS-02",
    "CN-DIS-03",
    "CN-DIS-04",
    "CN-DIS-05",
    "CN-DIS-06",
    "CN-TTL-01",
    "CN-LST-01",
    "CN-LST-02",
    "CN-LST-03",
    "CN-FND-01",
    "CN-FND-02",
    "CN-FND-03",
    "CN-FEE-01",
    "CN-HND-01",
    "CN-FUP-01",
    "CN-CMP-01",
    "CN-PRV-01",
    "CN-PRV-02",
    "CN-PRV-03",
    "CN-PRV-04",
    "CN-PRV-05",
    "CN-RET-01",
]

# A minimal valid policy; each malformed case below changes one piece of it.
VALID = """\
format: casetrail-policy/1
id: bad
version: 1
obligations:
  - id: XX-ONE-01
    description: {en: one, zh: 一}
    severity: low
    basis: I
    source: test
    trigger: complaint.received
    requires:
      - event: complaint.acknowledged
        label: acknowledgement
        where: {payload.complaint_id: $trigger.payload.complaint_id}
    timing: {within: PT24H}
"""


def write(tmp_path: Path, text: str, name: str = "bad") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped policies -----------------------------------------------------------------------


def test_shipped_policies_are_listed_and_load() -> None:
    """Both shipped policies load by id, and their ids match their files."""
    assert available_policies() == ("cn-baseline", "uk-overlay")

    for policy_id in available_policies():
        assert load_policy(policy_id).id == policy_id


def test_the_baseline_carries_every_domain_obligation() -> None:
    """All thirty DOMAIN.md §2.3 ids are in cn-baseline, each in both languages, with a source."""
    policy = load_policy("cn-baseline")

    ids = [obligation.id for obligation in policy.obligations]
    assert set(DOMAIN_IDS) <= set(ids)
    assert len(ids) == len(set(ids))
    for obligation in policy.obligations:
        assert obligation.description.en and obligation.description.zh, obligation.id
        assert obligation.source, obligation.id
        assert obligation.basis in BASIS_TAGS, obligation.id


def test_the_complaint_targets_are_internal_and_configurable() -> None:
    """CN-CMP-01 is tagged I and its 24 h / 48 h come from parameters an overlay can change."""
    policy = load_policy("cn-baseline")

    complaint = policy.obligation("CN-CMP-01")

    assert complaint.basis == "I"
    assert [rule.id for rule in complaint.rules] == ["acknowledge", "first-solution"]
    assert [rule.timing.within.text for rule in complaint.rules if rule.timing.within] == [
        "PT24H",
        "PT48H",
    ]
    assert policy.parameters["complaint_acknowledge"] == "PT24H"


def test_month_end_reconciliation_is_marked_outside_the_case() -> None:
    """CN-FND-03 is an agency-scope obligation with no per-case rule."""
    obligation = load_policy("cn-baseline").obligation("CN-FND-03")

    assert obligation.scope == "agency"
    assert obligation.rules == ()


def test_the_uk_overlay_keeps_the_internal_practice_and_adds_uk_rules() -> None:
    """uk-overlay extends cn-baseline, keeps three internal obligations and names both hashes."""
    overlay = load_policy("uk-overlay")
    base = load_policy("cn-baseline")

    ids = [obligation.id for obligation in overlay.obligations]
    assert ids[:3] == ["CN-HND-01", "CN-FUP-01", "CN-CMP-01"]
    assert {"UK-INF-01", "UK-INT-01", "UK-CMP-01", "UK-AML-01"} <= set(ids)
    assert overlay.ref()["extends"] == base.ref()
    assert overlay.calendar.weekend == frozenset({5, 6})
    assert not overlay.calendar.covers(2024)


# --- content hash -------------------------------------------------------------------------------


def test_content_hash_is_sha256_of_the_file_bytes() -> None:
    """The hash a verdict carries is exactly SHA-256 of the shipped file."""
    path = POLICY_DIR / "cn-baseline.yaml"

    policy = load_policy("cn-baseline")

    assert policy.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.ref() == {"id": "cn-baseline", "version": "2025.1", "sha256": policy.content_hash}


def test_content_hash_is_stable_across_loads(tmp_path: Path) -> None:
    """Loading the same bytes twice gives the same hash."""
    path = write(tmp_path, VALID)

    assert load_policy_file(path).content_hash == load_policy_file(path).content_hash


def test_content_hash_changes_with_any_byte(tmp_path: Path) -> None:
    """Even a comment changes the hash: the hash names the text, not its meaning."""
    first = load_policy_file(write(tmp_path, VALID)).content_hash

    second = load_policy_file(write(tmp_path, VALID + "# a comment\n")).content_hash

    assert first != second


# --- malformed policies -------------------------------------------------------------------------

MALFORMED = [
    pytest.param(
        ("{within: PT24H}", "{within: P1X}"),
        "bad.yaml:15: obligations[0].timing.within: 'P1X' is not an ISO 8601 duration",
        id="bad-duration",
    ),
    pytest.param(
        ("severity: low", "severity: dire"),
        "bad.yaml:7: obligations[0].severity: 'dire' is not one of critical, high, medium, low",
        id="bad-severity",
    ),
    pytest.param(
        ("basis: I", "basis: X"),
        "bad.yaml:8: obligations[0].basis: 'X' is not one of V, V2, R, I, D",
        id="bad-basis",
    ),
    pytest.param(
        ("trigger: complaint.received", "trigger: complaint.recieved"),
        "bad.yaml:10: obligations[0].trigger: 'complaint.recieved' is not an event type",
        id="unknown-event-type",
    ),
    pytest.param(
        ("    source: test\n", ""),
        "bad.yaml:5: obligations[0].source: this field is required",
        id="missing-field",
    ),
    pytest.param(
        ("label: acknowledgement", "lable: acknowledgement"),
        "bad.yaml:13: obligations[0].requires[0].lable: unknown key 'lable'",
        id="unknown-key",
    ),
    pytest.param(
        ("$trigger.payload.complaint_id", "$trigg.payload.complaint_id"),
        "bad.yaml:14: obligations[0].requires[0].where.payload.complaint_id: "
        "'$trigg.payload.complaint_id' does not start with one of",
        id="bad-reference",
    ),
    pytest.param(
        ("$trigger.payload.complaint_id}", "{like: x}}"),
        "bad.yaml:14: obligations[0].requires[0].where.payload.complaint_id.like: "
        "unknown operator 'like'",
        id="unknown-operator",
    ),
    pytest.param(
        ("{within: PT24H}", "{within: $params.nope}"),
        "bad.yaml:15: obligations[0].timing.within: '$params.nope' names no parameter",
        id="unknown-parameter",
    ),
    pytest.param(
        ("$trigger.payload.complaint_id", "$case.buyer"),
        "bad.yaml:14: obligations[0].requires[0].where.payload.complaint_id: '$case.buyer': "
        "case facts are",
        id="unknown-case-fact",
    ),
    pytest.param(
        ("id: bad\n", "id: other\n"),
        "bad.yaml:2: id: 'other' does not match the file name 'bad'",
        id="id-not-file-name",
    ),
    pytest.param(
        ("severity: low\n", "severity: low\n    severity: high\n"),
        "bad.yaml:8: obligations[0].severity: this key is given twice",
        id="duplicate-key",
    ),
    pytest.param(
        ("timing: {within: PT24H}", "timing: invariant"),
        "bad.yaml:11: obligations[0].requires: a rule timed invariant judges its trigger",
        id="invariant-with-evidence",
    ),
    pytest.param(
        ("version: 1\n", "version: 1\nkeep: [XX-ONE-01]\n"),
        "bad.yaml:4: keep: only a policy that extends another can keep or drop",
        id="keep-without-extends",
    ),
    pytest.param(
        ("version: 1\n", "version: 1\nextends: nowhere\n"),
        "bad.yaml:4: extends: no policy 'nowhere' next to this file",
        id="extends-missing",
    ),
    pytest.param(
        ("    source: test\n", "    source: test\n    in_force_from: 2021-02-30\n"),
        "bad.yaml:10: obligations[0].in_force_from: '2021-02-30' cannot be read",
        id="impossible-date",
    ),
    pytest.param(
        ("    source: test\n", "    source: test\n    in_force_from: soon\n"),
        "bad.yaml:10: obligations[0].in_force_from: expected a date like 2021-11-01, got 'soon'",
        id="not-a-date",
    ),
    pytest.param(
        ("severity: low\n", "severity: low\n    note: 2021-13-01\n"),
        "bad.yaml:8: obligations[0].note: '2021-13-01' cannot be read",
        id="impossible-date-anywhere",
    ),
    pytest.param(
        ("obligations:\n", "obligations:\n  - : [\n"),
        "bad.yaml:5: (file): not valid YAML",
        id="not-yaml",
    ),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_malformed_policy_names_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    """Each mistake is reported as file:line: field: what is wrong."""
    old, new = change
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))

    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)

    assert str(caught.value).startswith(message)


def test_policy_error_carries_its_parts_as_attributes(tmp_path: Path) -> None:
    """A caller can point an editor at the fault without parsing the message."""
    path = write(tmp_path, VALID.replace("{within: PT24H}", "{within: P1X}"))

    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)

    error = caught.value
    assert (error.file, error.line, error.field) == ("bad.yaml", 15, "obligations[0].timing.within")


def test_duplicate_obligation_ids_are_refused(tmp_path: Path) -> None:
    """Two obligations with one id would make verdicts ambiguous."""
    obligation = VALID[VALID.index("  - id:") :]
    path = write(tmp_path, VALID + obligation)

    with pytest.raises(PolicyError, match=r"bad.yaml:16: obligations\[1\]: obligation id"):
        load_policy_file(path)


def test_load_policy_refuses_an_unknown_or_unsafe_name() -> None:
    """Only shipped policies, by plain name, load by id."""
    with pytest.raises(ValueError, match="no policy named 'nope'"):
        load_policy("nope")
    with pytest.raises(ValueError, match="not a plain lowercase name"):
        load_policy("../cn-baseline")


# --- overlays -----------------------------------------------------------------------------------

OVERLAY = """\
format: casetrail-policy/1
id: overlay
version: 2
extends: base
drop: [XX-TWO-01]
parameters:
  answer_within: PT12H
obligations:
  - id: XX-TRE-01
    description: {en: three, zh: 三}
    severity: low
    basis: I
    source: test
    trigger: complaint.received
    requires:
      - event: complaint.closed
        label: closure
    timing: {within: P30D}
"""


def test_an_overlay_drops_adds_and_retunes_inherited_rules(tmp_path: Path) -> None:
    """Parameters an overlay sets reach the base's obligations; drop and add work by id."""
    base = VALID.replace("id: bad", "id: base").replace(
        "{within: PT24H}", "{within: $params.answer_within}"
    )
    base = base.replace("version: 1\n", "version: 1\nparameters:\n  answer_within: PT24H\n")
    second = base[base.index("  - id:") :].replace("XX-ONE-01", "XX-TWO-01")
    write(tmp_path, base + second, name="base")

    overlay = load_policy_file(write(tmp_path, OVERLAY, name="overlay"))

    assert [o.id for o in overlay.obligations] == ["XX-ONE-01", "XX-TRE-01"]
    timing = overlay.obligation("XX-ONE-01").rules[0].timing
    assert timing.within is not None and timing.within.text == "PT12H"
    assert overlay.ref()["extends"]["id"] == "base"


def test_an_overlay_cannot_extend_itself(tmp_path: Path) -> None:
    """A cycle of extends is refused instead of recursing forever."""
    path = write(tmp_path, VALID.replace("version: 1\n", "version: 1\nextends: bad\n"))

    with pytest.raises(PolicyError, match="extends itself"):
        load_policy_file(path)


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["P1D", "PT24H", "P1Y2M3W4DT5H6M7S", "PT0S", "P5Y"])
def test_iso_durations_parse(text: str) -> None:
    duration = parse_duration(text)

    assert duration is not None and duration.text == text


@pytest.mark.parametrize("text", ["P", "PT", "P1X", "1D", "P1DT", "PT1.5H", "p1d", "P-1D"])
def test_non_durations_are_refused(text: str) -> None:
    assert parse_duration(text) is None


def test_duration_arithmetic_follows_the_calendar() -> None:
    """P1M from 31 January lands on the last day of February; hours are exact."""
    start = datetime(2024, 1, 31, 10, 0, tzinfo=BEIJING)
    month, day = parse_duration("P1M"), parse_duration("PT24H")
    assert month is not None and day is not None

    assert month.after(start) == datetime(2024, 2, 29, 10, 0, tzinfo=BEIJING)
    assert day.after(start) == datetime(2024, 2, 1, 10, 0, tzinfo=BEIJING)
    assert month.before(datetime(2024, 3, 31, tzinfo=BEIJING)) == datetime(
        2024, 2, 29, tzinfo=BEIJING
    )
