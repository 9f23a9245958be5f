"""The cheap scan for numbers a double cannot hold (engine.vault.numbers.suspect).

``inexact`` must answer exactly as a full exact parse would, whatever the bytes: the scan
may only skip that parse when no number token can be inexact. Checked on seeded random JSON
documents (every number shape, both separators styles, digits inside strings) against the
full parse, plus the edge shapes by name.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from engine.vault.numbers import SUSPECT, _exact_float, _exact_int, inexact, suspect


def full_parse_inexact(data: bytes) -> bool:
    """The reference: parse every number exactly, no scan first."""
    try:
        json.loads(data, parse_float=_exact_float, parse_int=_exact_int)
    except Exception as exc:  # noqa: BLE001 - _Inexact is private
        if type(exc).__name__ == "_Inexact":
            return True
        raise
    return False


def random_number(rng: random.Random) -> str:
    digits = rng.choice([1, 2, 5, 14, 15, 16, 17, 20, 25])
    mantissa = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(digits - 1))
    sign = rng.choice(["", "", "-"])
    shape = rng.randrange(4)
    if shape == 0:
        return sign + mantissa
    if shape == 1:
        cut = rng.randint(1, len(mantissa))
        return sign + mantissa[:cut] + "." + (mantissa[cut:] or "0")
    exp = rng.choice(["1", "22", "99", "300", "308", "309", "999", "400", "07"])
    return sign + mantissa[:1] + "." + (mantissa[1:] or "0") + rng.choice("eE") + rng.choice(["", "+", "-"]) + exp


def random_string(rng: random.Random) -> str:
    alphabet = "0123456789abcdefeE.+-:,[ "
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


def random_value(rng: random.Random, depth: int = 0) -> str:
    kind = rng.randrange(5 if depth < 3 else 2)
    if kind == 0:
        return random_number(rng)
    if kind == 1:
        return json.dumps(random_string(rng))
    if kind == 2:
        return rng.choice(["true", "false", "null"])
    sep = rng.choice([",", ", ", " ,\n  "])
    items = [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == 3:
        return "[" + rng.choice(["", " ", "\n"]) + sep.join(items) + "]"
    colon = rng.choice([":", ": ", " :\t"])
    return "{" + sep.join(f'"k{i}"{colon}{v}' for i, v in enumerate(items)) + "}"


def test_inexact_agrees_with_a_full_exact_parse_on_random_documents() -> None:
    rng = random.Random(18)
    inexact_seen = exact_seen = 0
    for _ in range(6000):
        doc = random_value(rng).encode()
        expected = full_parse_inexact(doc)
        assert inexact(doc) is expected, doc
        if expected:
            inexact_seen += 1
            assert suspect(doc), doc
        else:
            exact_seen += 1
    assert inexact_seen > 300 and exact_seen > 300  # both answers were really exercised


@pytest.mark.parametrize("doc", [
    b"12345678901234567", b"-12345678901234567", b"1e999", b" 1E-400", b"[9007199254740993]",
    b'{"a": -9007199254740993}', b'{"a":1.0000000000000001}', b'{"a" :\n 12345678901234567.891}',
    b'[1, 2,\t123456789012345678901]', b'{"x": [1e309]}', b'{"x":5E+999}',
])
def test_inexact_numbers_in_every_position_are_found(doc: bytes) -> None:
    assert suspect(doc)
    assert inexact(doc) and full_parse_inexact(doc)


@pytest.mark.parametrize("doc", [
    b'{"boundary": "00000000000073575e62cc76", "f": "image001.png"}',
    b'{"id": "a48b003a-5bb1-41be-8439-71bb8b4654cf", "n": 123456789012345, "x": 1.5e99}',
    b'{"ts": "20261129T042831797123456789Z", "v": [0.1, -2, 3e10]}',
])
def test_digits_inside_strings_are_not_suspect(doc: bytes) -> None:
    assert SUSPECT.search(doc) is not None  # the former regex flagged these
    assert not suspect(doc)
    assert not inexact(doc)


def test_a_flagged_but_exact_number_is_kept() -> None:
    doc = b'{"a": 1234567890123456, "b": 0.1000000000000000}'
    assert suspect(doc)
    assert not inexact(doc)
    assert Decimal("0.1000000000000000") == Decimal(repr(0.1))


def test_hex_ids_with_exponent_shapes_are_not_suspect() -> None:
    doc = b'{"answers": {"5e123abc": {"questionId": "5e123abc"}, "1e999x": 1}, "t": "07e+123"}'
    assert SUSPECT.search(doc) is not None
    assert not suspect(doc)


def test_a_record_nested_beyond_the_exactness_check_is_refused_not_a_crash() -> None:
    """orjson reads 1,024 levels; the exactness check (Python's json) stops earlier. A deep
    record with a long number is refused as inexact (canonize: NUMBER_INEXACT), never a
    RecursionError that fails the whole account."""
    from engine.vault.numbers import inexact

    deep = b"[" * 1000 + b"12345678901234567" + b"]" * 1000
    assert inexact(deep) is True
    assert inexact(b"[" * 1000 + b"1" + b"]" * 1000) is False  # nothing long: never parsed deeply


def test_integers_past_a_double_s_range_are_approximated_never_raised() -> None:
    """A STATE with a 350-digit integer crashed the extract worker: `float(int(text))` raises
    OverflowError from 309 digits on (and int() refuses 4,300)."""
    from engine.vault.numbers import approximate, exact_value

    for digits in (309, 350, 400, 5000):
        value, text = exact_value(b'{"bookmark": ' + b"9" * digits + b"}")
        assert value == {"bookmark": float("inf")} and text is not None, digits
    assert approximate(b"[18446744073709551615, -" + b"9" * 320 + b"]") == [18446744073709551615, float("-inf")]
