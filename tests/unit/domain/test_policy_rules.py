import pytest

from ssbg.domain.enums import Classification, PolicyOperation, Role
from ssbg.domain.policy_rules import PolicyRule


def test_empty_rule_matches_everything() -> None:
    rule = PolicyRule.from_json({})
    assert rule.matches(
        operation=PolicyOperation.BACKUP,
        role=Role.OPERATOR,
        classification=None,
        source_system=None,
        department=None,
        local_hour=3,
    )


def test_every_present_field_must_match() -> None:
    rule = PolicyRule.from_json(
        {
            "operations": ["backup"],
            "roles": ["operator"],
            "classifications": ["SECRET"],
            "source_systems": ["db-*"],
            "departments": ["finance"],
            "hours": "08-18",
        }
    )
    matching = {
        "operation": PolicyOperation.BACKUP,
        "role": Role.OPERATOR,
        "classification": Classification.SECRET,
        "source_system": "db-prod-1",
        "department": "finance",
        "local_hour": 9,
    }
    assert rule.matches(**matching)  # type: ignore[arg-type]
    for field, other in [
        ("operation", PolicyOperation.RESTORE),
        ("role", Role.ADMIN),
        ("classification", Classification.PUBLIC),
        ("source_system", "web-1"),
        ("department", "hr"),
        ("local_hour", 18),
    ]:
        assert not rule.matches(**{**matching, field: other})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"operations": ["archive"]}, "operations accepts only"),
        ({"roles": ["root"]}, "roles accepts only"),
        ({"classifications": ["TOP_SECRET"]}, "classifications accepts only"),
        ({"hours": "8-18"}, "HH-HH"),
        ({"hours": "18-08"}, "start < end"),
        ({"source_systems": "db-*"}, "list of non-empty strings"),
        ({"colour": ["red"]}, "unknown rule fields"),
    ],
)
def test_invalid_rules_are_refused_with_the_field_named(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PolicyRule.from_json(raw)
