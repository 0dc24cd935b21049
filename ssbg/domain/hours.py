"""Hour windows written ``HH-HH`` (business hours, policy rules)."""

import re

_HOURS = re.compile(r"^(\d{2})-(\d{2})$")


def _two_digits(low: int, high: int) -> str:
    """A regex for the two-digit numbers ``low``..``high`` (0 ≤ low ≤ high ≤ 29)."""
    parts = []
    for tens in range(low // 10, high // 10 + 1):
        first, last = max(low, tens * 10) % 10, min(high, tens * 10 + 9) % 10
        ones = str(first) if first == last else f"[{first}-{last}]"
        parts.append(f"{tens}{ones}")
    return "|".join(parts)


HOURS_PATTERN = (
    "^(?:" + "|".join(f"{start:02d}-(?:{_two_digits(start + 1, 24)})" for start in range(24)) + ")$"
)
"""Exactly the windows :func:`parse_hours` accepts, for the OpenAPI description."""


def parse_hours(value: str) -> tuple[int, int]:
    """``"HH-HH"`` → (start, end) with 0 ≤ start < end ≤ 24; raises ``ValueError`` otherwise."""
    match = _HOURS.match(value)
    if match is None:
        raise ValueError("hours must look like HH-HH, for example 08-18")
    start, end = int(match.group(1)), int(match.group(2))
    if not 0 <= start < end <= 24:
        raise ValueError("hours must satisfy 00 <= start < end <= 24")
    return start, end


def within_hours(hours: tuple[int, int], local_hour: int) -> bool:
    start, end = hours
    return start <= local_hour < end
