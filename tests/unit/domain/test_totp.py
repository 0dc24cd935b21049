from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from ssbg.domain.totp import STEP_SECONDS, match_totp_step, time_step

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 27, 12, 0, 10, tzinfo=UTC)


def code_at(moment: datetime) -> str:
    return str(pyotp.TOTP(SECRET).at(moment))


def test_current_code_is_accepted_and_reports_its_step() -> None:
    assert match_totp_step(SECRET, code_at(NOW), NOW, None) == time_step(NOW)


@pytest.mark.parametrize("offset_steps", [-1, 1])
def test_codes_one_step_away_are_accepted(offset_steps: int) -> None:
    moment = NOW + timedelta(seconds=offset_steps * STEP_SECONDS)
    assert match_totp_step(SECRET, code_at(moment), NOW, None) == time_step(NOW) + offset_steps


@pytest.mark.parametrize("offset_steps", [-2, 2, 10])
def test_codes_further_away_are_refused(offset_steps: int) -> None:
    moment = NOW + timedelta(seconds=offset_steps * STEP_SECONDS)
    assert match_totp_step(SECRET, code_at(moment), NOW, None) is None


def test_wrong_code_is_refused() -> None:
    wrong = f"{(int(code_at(NOW)) + 1) % 1_000_000:06d}"
    assert match_totp_step(SECRET, wrong, NOW, None) is None


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "abcdef", " 12345", "\xb9\xb2\xb3\xb9\xb2\xb3", "\u0661" * 6]
)
def test_malformed_codes_are_refused(code: str) -> None:
    assert match_totp_step(SECRET, code, NOW, None) is None


def test_replay_of_the_same_step_is_refused() -> None:
    step = match_totp_step(SECRET, code_at(NOW), NOW, None)
    assert step is not None
    assert match_totp_step(SECRET, code_at(NOW), NOW, last_used_step=step) is None


def test_an_older_step_after_a_newer_one_is_refused() -> None:
    newer = NOW + timedelta(seconds=STEP_SECONDS)
    assert match_totp_step(SECRET, code_at(NOW), newer, last_used_step=time_step(newer)) is None


def test_the_next_step_after_a_used_one_is_accepted() -> None:
    later = NOW + timedelta(seconds=STEP_SECONDS)
    assert match_totp_step(SECRET, code_at(later), later, time_step(NOW)) == time_step(later)
