import re

from ssbg.domain.hours import HOURS_PATTERN, parse_hours


def test_the_declared_hours_pattern_is_exactly_what_parse_hours_takes() -> None:
    for start in range(100):
        for end in range(100):
            value = f"{start:02d}-{end:02d}"
            try:
                parse_hours(value)
                accepted = True
            except ValueError:
                accepted = False
            assert accepted == bool(re.fullmatch(HOURS_PATTERN, value)), value
    assert not re.fullmatch(HOURS_PATTERN, "08-18\n")
