"""Hour windows written ``HH-HH`` (business hours, policy rules)."""

import re

_HOURS = re.compile(r"^(\d{2})-(\d{2})$")


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
