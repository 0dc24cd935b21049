import re
import sys
import unicodedata

import pytest

from ssbg.domain import backup_fields
from ssbg.domain.backup_fields import (
    FILENAME_PATTERN,
    check_description,
    check_source_system,
    normalize_content_type,
    normalize_filename,
)


@pytest.mark.parametrize("value", ["db-prod-1", "a", "A.b_c-9", "x" * 200])
def test_valid_source_systems(value: str) -> None:
    assert check_source_system(value) == value


@pytest.mark.parametrize("value", ["", "x" * 201, "db prod", "db/prod", "ü", "a\n"])
def test_invalid_source_systems(value: str) -> None:
    with pytest.raises(ValueError, match="1-200"):
        check_source_system(value)


def test_descriptions_allow_newlines_but_not_other_control_characters() -> None:
    assert check_description("line one\nline two\ttabbed") == "line one\nline two\ttabbed"
    with pytest.raises(ValueError, match="control"):
        check_description("bell\x07")
    with pytest.raises(ValueError, match="2000"):
        check_description("x" * 2001)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("dump.sql", "dump.sql"), ("/var/backups/dump.sql", "dump.sql"), ("C:\\x\\y.bak", "y.bak")],
)
def test_filenames_keep_their_last_component(given: str, kept: str) -> None:
    assert normalize_filename(given) == kept


@pytest.mark.parametrize(
    "value", ["", "dir/", "..", "a\x00b", "x" * 256, "a\u202eb", "a\x01/b.txt", "d/" * 128 + "f"]
)
def test_invalid_filenames(value: str) -> None:
    with pytest.raises(ValueError, match=r"must"):
        normalize_filename(value)


def test_content_types() -> None:
    assert normalize_content_type(None) == "application/octet-stream"
    assert normalize_content_type(" text/plain; charset=utf-8 ") == "text/plain; charset=utf-8"
    with pytest.raises(ValueError, match="media type"):
        normalize_content_type("not a type")


def test_the_declared_control_and_format_classes_are_this_pythons() -> None:
    """The regex classes the API declares are Unicode categories Cc and Cf, exactly."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    declared = set(re.findall(f"[{backup_fields._CONTROL_OR_FORMAT}]", every))
    assert declared == {c for c in every if unicodedata.category(c) in {"Cc", "Cf"}}


@pytest.mark.parametrize(
    "value",
    ["dump.sql", "/var/x/dump.sql", "C:\\x\\y.bak", "...", ".a", "a.", "a/..", "..", "", "a/",
     "x" * 255, "x" * 256, "a\u200bb", "отчёт.txt", "a\nb/c"],
)  # fmt: skip
def test_the_filename_pattern_is_the_validator(value: str) -> None:
    try:
        backup_fields.normalize_filename(value)
        accepted = True
    except ValueError:
        accepted = False
    declared = len(value) <= backup_fields.MAX_FILENAME_LENGTH and bool(
        re.fullmatch(FILENAME_PATTERN, value)
    )
    assert accepted == declared
