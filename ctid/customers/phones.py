"""The one rule for phone numbers: a number is its digits; the customer book matches callers on top of it.

`phone_digits` is the rule: only the ASCII digits count, in order; +, spaces, dashes, dots and brackets
are for the reader. Routing compares dialled numbers (DNIS) by it. The customer book stores a number as
`phone_key`, its digits without leading zeros, so "+44 20 7946 0958", "0044 20 7946 0958" and
"020 7946-0958" become "442079460958", "442079460958" and "2079460958"; two keys match when they are
equal, or when the shorter has at least `MIN_SUFFIX_DIGITS` (9) digits and is the tail of the longer - so
a national number finds the international one it was stored as and vice versa. Shorter numbers
(extensions) match only exactly.
"""

from __future__ import annotations

MIN_SUFFIX_DIGITS = 9


def phone_digits(raw: str) -> str:
    """The digits of a phone number, in order; "" when it has none."""
    return "".join(ch for ch in raw if ch.isascii() and ch.isdigit())


def phone_key(raw: str) -> str:
    """A customer's number as the book stores it: its digits without a dialling prefix's leading zeros."""
    return phone_digits(raw).lstrip("0")


def numbers_match(a: str, b: str) -> bool:
    """Whether two phone keys are the same line under the module's matching rule."""
    if a == b:
        return bool(a)
    short, long = sorted((a, b), key=len)
    return len(short) >= MIN_SUFFIX_DIGITS and long.endswith(short)
