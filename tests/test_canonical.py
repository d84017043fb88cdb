"""RFC 8785 canonical bytes: the public vectors, the RFC's own examples, ES6 numbers."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from domain.canonical import (
    NotCanonicalizable,
    canonical_bytes,
    canonical_bytes_reference,
    format_number,
)

VECTORS = Path(__file__).parent / "vectors" / "jcs" / "testdata"
VECTOR_NAMES = sorted(path.name for path in (VECTORS / "input").glob("*.json"))


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_public_vector_comes_out_byte_for_byte(name: str) -> None:
    value = json.loads((VECTORS / "input" / name).read_text(encoding="utf-8"))
    expected = (VECTORS / "output" / name).read_bytes()

    assert canonical_bytes(value) == expected
    assert canonical_bytes_reference(value) == expected


def test_rfc_key_order_example_sorts_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: the sorting example with keys €, \r, דּ, 1, 😀, \u0080, ö.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }

    names = list(json.loads(canonical_bytes(value)))

    assert names == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_orjson_with_sorted_keys_would_get_the_rfc_key_order_wrong() -> None:
    import orjson

    value = {"\ufb33": 1, "\U0001f600": 2}

    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) != canonical_bytes(value)
    assert canonical_bytes(value) == '{"\U0001f600":2,"\ufb33":1}'.encode()


def test_rfc_number_example() -> None:
    # RFC 8785 §3.2.2.3 and Appendix B examples.
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "literals": [None, True, False],
    }

    assert canonical_bytes(value) == (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}'
    )


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_rfc_appendix_b_numbers(bits: str, expected: str) -> None:
    assert format_number(_double(bits)) == expected


def test_es6_number_file_first_10000_lines_hash_as_published() -> None:
    # The JCS test data README publishes the SHA-256 of the first 10,000 lines of its
    # deterministic ES6 number file; regenerating them checks every formatting branch.
    lines = []
    for value in _es6_test_values(10_000):
        bits = struct.unpack(">Q", struct.pack(">d", value))[0]
        lines.append(f"{bits:x},{format_number(value)}\n")

    digest = hashlib.sha256("".join(lines).encode()).hexdigest()

    assert digest == "b9f7a8e75ef22a835685a52ccba7f7d6bdc99e34b010992cbc5864cd12be6892"


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), 2**53, -(2**53), 18446744073709551616, "\ud800"],
)
def test_values_without_a_canonical_form_are_refused(value: object) -> None:
    with pytest.raises(NotCanonicalizable):
        canonical_bytes({"v": value})


def test_non_json_types_are_refused() -> None:
    with pytest.raises(NotCanonicalizable):
        canonical_bytes({"v": object()})
    with pytest.raises(NotCanonicalizable):
        canonical_bytes({1: "integer key"})


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(_json_values)
def test_fast_and_reference_paths_agree_and_match_an_independent_implementation(
    value: object,
) -> None:
    reference = canonical_bytes_reference(value)

    assert canonical_bytes(value) == reference
    assert rfc8785.dumps(value) == reference


def _double(bits: str) -> float:
    return float(struct.unpack(">d", bytes.fromhex(bits))[0])


_STATIC_U64 = [
    "0000000000000000",
    "8000000000000000",
    "0000000000000001",
    "8000000000000001",
    "c46696695dbd1cc3",
    "c43211ede4974a35",
    "c3fce97ca0f21056",
    "c3c7213080c1a6ac",
    "c39280f39a348556",
    "c35d9b1f5d20d557",
    "c327af4c4a80aaac",
    "c2f2f2a36ecd5556",
    "c2be51057e155558",
    "c28840d131aaaaac",
    "c253670dc1555557",
    "c21f0b4935555557",
    "c1e8d5d42aaaaaac",
    "c1b3de4355555556",
    "c17fca0555555556",
    "c1496e6aaaaaaaab",
    "c114585555555555",
    "c0e046aaaaaaaaab",
    "c0aa0aaaaaaaaaaa",
    "c074d55555555555",
    "c040aaaaaaaaaaab",
    "c00aaaaaaaaaaaab",
    "bfd5555555555555",
    "bfa1111111111111",
    "bf6b4e81b4e81b4f",
    "bf35d867c3ece2a5",
    "bf0179ec9cbd821e",
    "becbf647612f3696",
    "be965e9f80f29212",
    "be61e54c672874db",
    "be2ca213d840baf8",
    "bdf6e80fe033c8c6",
    "bdc2533fe68fd3d2",
    "bd8d51ffd74c861c",
    "bd5774ccac3d3817",
    "bd22c3d6f030f9ac",
    "bcee0624b3818f79",
    "bcb804ea293472c7",
    "bc833721ba905bd3",
    "bc4ebe9c5db3c61e",
    "bc18987d17c304e5",
    "bbe3ad30dfcf371d",
    "bbaf7b816618582f",
    "bb792f9ab81379bf",
    "bb442615600f9499",
    "bb101e77800c76e1",
    "bad9ca58cce0be35",
    "baa4a1e0a3e6fe90",
    "ba708180831f320d",
    "ba3a68cd9e985016",
    "446696695dbd1cc3",
    "443211ede4974a35",
    "43fce97ca0f21056",
    "43c7213080c1a6ac",
    "439280f39a348556",
    "435d9b1f5d20d557",
    "4327af4c4a80aaac",
    "42f2f2a36ecd5556",
    "42be51057e155558",
    "428840d131aaaaac",
    "4253670dc1555557",
    "421f0b4935555557",
    "41e8d5d42aaaaaac",
    "41b3de4355555556",
    "417fca0555555556",
    "41496e6aaaaaaaab",
    "4114585555555555",
    "40e046aaaaaaaaab",
    "40aa0aaaaaaaaaaa",
    "4074d55555555555",
    "4040aaaaaaaaaaab",
    "400aaaaaaaaaaaab",
    "3fd5555555555555",
    "3fa1111111111111",
    "3f6b4e81b4e81b4f",
    "3f35d867c3ece2a5",
    "3f0179ec9cbd821e",
    "3ecbf647612f3696",
    "3e965e9f80f29212",
    "3e61e54c672874db",
    "3e2ca213d840baf8",
    "3df6e80fe033c8c6",
    "3dc2533fe68fd3d2",
    "3d8d51ffd74c861c",
    "3d5774ccac3d3817",
    "3d22c3d6f030f9ac",
    "3cee0624b3818f79",
    "3cb804ea293472c7",
    "3c833721ba905bd3",
    "3c4ebe9c5db3c61e",
    "3c18987d17c304e5",
    "3be3ad30dfcf371d",
    "3baf7b816618582f",
    "3b792f9ab81379bf",
    "3b442615600f9499",
    "3b101e77800c76e1",
    "3ad9ca58cce0be35",
    "3aa4a1e0a3e6fe90",
    "3a708180831f320d",
    "3a3a68cd9e985016",
    "4024000000000000",
    "4014000000000000",
    "3fe0000000000000",
    "3fa999999999999a",
    "3f747ae147ae147b",
    "3f40624dd2f1a9fc",
    "3f0a36e2eb1c432d",
    "3ed4f8b588e368f1",
    "3ea0c6f7a0b5ed8d",
    "3e6ad7f29abcaf48",
    "3e35798ee2308c3a",
    "3ed539223589fa95",
    "3ed4ff26cd5a7781",
    "3ed4f95a762283ff",
    "3ed4f8c60703520c",
    "3ed4f8b72f19cd0d",
    "3ed4f8b5b31c0c8d",
    "3ed4f8b58d1c461a",
    "3ed4f8b5894f7f0e",
    "3ed4f8b588ee37f3",
    "3ed4f8b588e47da4",
    "3ed4f8b588e3849c",
    "3ed4f8b588e36bb5",
    "3ed4f8b588e36937",
    "3ed4f8b588e368f8",
    "3ed4f8b588e368f1",
    "3ff0000000000000",
    "bff0000000000000",
    "bfeffffffffffffa",
    "bfeffffffffffffb",
    "3feffffffffffffa",
    "3feffffffffffffb",
    "3feffffffffffffc",
    "3feffffffffffffe",
    "bfefffffffffffff",
    "bfefffffffffffff",
    "3fefffffffffffff",
    "3fefffffffffffff",
    "3fd3333333333332",
    "3fd3333333333333",
    "3fd3333333333334",
    "0010000000000000",
    "000ffffffffffffd",
    "000fffffffffffff",
    "7fefffffffffffff",
    "ffefffffffffffff",
    "4340000000000000",
    "c340000000000000",
    "4430000000000000",
    "44b52d02c7e14af5",
    "44b52d02c7e14af6",
    "44b52d02c7e14af7",
    "444b1ae4d6e2ef4e",
    "444b1ae4d6e2ef4f",
    "444b1ae4d6e2ef50",
    "3eb0c6f7a0b5ed8c",
    "3eb0c6f7a0b5ed8d",
    "41b3de4355555553",
    "41b3de4355555554",
    "41b3de4355555555",
    "41b3de4355555556",
    "41b3de4355555557",
    "becbf647612f3696",
    "43143ff3c1cb0959",
]


def _es6_test_values(count: int) -> list[float]:
    """The number sequence of the JCS ES6 test file, generated as its README describes."""
    values = [_double(bits) for bits in _STATIC_U64]
    values += [_double(f"{0x0010000000000000 + i:016x}") for i in range(2000)]

    block = bytes(32)
    pending: list[float] = []
    while len(values) < count:
        value = 0.0
        while value == 0.0 or value != value or value in (float("inf"), -float("inf")):
            if not pending:
                block = hashlib.sha256(block).digest()
                pending = list(struct.unpack("<4d", block))
            value = pending.pop(0)
        values.append(value)

    return values[:count]
