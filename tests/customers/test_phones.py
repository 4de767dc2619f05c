"""The one phone-number rule: digits for dialled numbers, and the customer book's keys and tail matching."""

import pytest

from ctid.customers import numbers_match, phone_digits, phone_key


@pytest.mark.parametrize(
    ("written", "digits"),
    [
        ("4000", "4000"),
        ("40 00", "4000"),  # routing.yaml's DNIS keys: spaces and dashes are for the reader
        ("+44-20 7946\t0958", "442079460958"),
        ("+44 (0)20 7946.0958", "4402079460958"),
        ("0044 20", "004420"),  # leading zeros are digits too: only the book's keys drop them
        ("ext.", ""),
        ("٤٠٠٠", ""),  # non-ASCII digits are not a number Asterisk dials
    ],
)
def test_a_number_is_its_ascii_digits(written: str, digits: str) -> None:
    assert phone_digits(written) == digits


def test_normalization_rule() -> None:
    assert phone_key("+44 (0)20 7946-0958") == "4402079460958"
    assert phone_key("00 44 20 7946 0958") == "442079460958"
    assert phone_key("ext.") == ""
    assert numbers_match("442079460958", "2079460958")
    assert not numbers_match("1234", "91234")
    assert not numbers_match("", "")


def test_national_and_international_forms_share_a_key_tail() -> None:
    national, international = phone_key("020 7946-0958"), phone_key("+44 20 7946 0958")
    assert (national, international) == ("2079460958", "442079460958")
    assert numbers_match(national, international) and numbers_match(international, national)


def test_a_tail_shorter_than_nine_digits_matches_only_exactly() -> None:
    assert numbers_match("12345678", "12345678")
    assert not numbers_match("12345678", "912345678")
    assert numbers_match("123456789", "44123456789")
