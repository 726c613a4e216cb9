"""Float tolerances, defined once, and the comparison of output rows with them.

Why a float could differ at all: the contract writes every formula out in
float64 (``U = e * (1.0 + target)``, ``ret = s * (exit_price / e - 1.0)``, ...)
so that every backend produces the same bits, and a backend that follows it
without fastmath does: no formula pairs a multiply with an add, so even a
fused multiply-add on a GPU cannot move a bit, and max/min are exact. What
could still move a last bit is a compiler that reassociates (fastmath) or
turns a division into a multiplication by the reciprocal, and that is a
defect the spec forbids. So the tolerances are zero: the comparison is
exact, and loosening it is a decision taken here, once, with a reason.
Labels, indexes and flags are never compared with a tolerance.

The default float32 output is the float64 value rounded once to float32, so
the reference rounded the same way agrees exactly.
"""

from __future__ import annotations

import math

import numpy as np

# float64 output: relative and absolute slack (0: the same bits).
FLOAT64_RTOL = 0.0
FLOAT64_ATOL = 0.0
# float32 output: float32 ulps between the engine and the rounded reference.
FLOAT32_ULPS = 0

# Hand-worked expectations are decimal literals (0.02), while the float64
# results carry the binary rounding of the formulas (0.020000000000000018).
HAND_RTOL = 1e-12
HAND_ATOL = 1e-15

FLOAT_KEYS = ("ret", "mfe", "mae")
EXACT_KEYS = (
    "event_index",
    "label",
    "exit_index",
    "holding",
    "first_target",
    "first_stop",
    "ambiguous",
    "truncated",
)


def float32_ulps(a: float, b: float) -> int:
    """The distance between a and b in float32 ulps, after rounding both."""
    ia = _ordered(np.array([a], dtype=np.float32).view(np.int32)[0])
    ib = _ordered(np.array([b], dtype=np.float32).view(np.int32)[0])
    return abs(ia - ib)


def _ordered(bits: np.int32) -> int:
    """Map float32 bit patterns onto integers that sort like the floats."""
    bits = int(bits)
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


def floats_match(actual: float, expected: float, *, float64: bool) -> bool:
    """Whether an engine float matches the reference's float64 value."""
    if float64:
        return math.isclose(
            actual, expected, rel_tol=FLOAT64_RTOL, abs_tol=FLOAT64_ATOL
        ) or (actual == expected)
    return float32_ulps(actual, expected) <= FLOAT32_ULPS


def assert_rows_match(actual: list[dict], expected: list[dict], *, float64: bool):
    """Compare engine rows with reference rows: exact ints, flags and nulls."""
    assert len(actual) == len(expected), (len(actual), len(expected))
    for got, want in zip(actual, expected, strict=True):
        for key in EXACT_KEYS:
            assert got[key] == want[key], (key, got, want)
            assert (got[key] is None) == (want[key] is None), (key, got, want)
        for key in FLOAT_KEYS:
            assert floats_match(got[key], want[key], float64=float64), (
                key,
                got,
                want,
            )
