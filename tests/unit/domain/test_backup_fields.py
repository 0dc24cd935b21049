import pytest

from ssbg.domain.backup_fields import (
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


@pytest.mark.parametrize("value", ["", "dir/", "..", "a\x00b", "x" * 256, "a\u202eb"])
def test_invalid_filenames(value: str) -> None:
    with pytest.raises(ValueError, match=r"must"):
        normalize_filename(value)


def test_content_types() -> None:
    assert normalize_content_type(None) == "application/octet-stream"
    assert normalize_content_type(" text/plain; charset=utf-8 ") == "text/plain; charset=utf-8"
    with pytest.raises(ValueError, match="media type"):
        normalize_content_type("not a type")
