from datetime import timedelta

import pytest

from ssbg.domain.webhooks import retry_delay, sign, signature_matches

SECRET = b"webhook-test-secret"
BODY = b'{"event":"INCIDENT_LEVEL_CHANGE","incident":{"to_level":2}}'
# openssl dgst -sha256 -hmac webhook-test-secret, over BODY
EXPECTED = "sha256=cf86e4703e2533234e5272e1c286300bfe49883c15784fdc3bd47df48218225f"


def test_signature_is_the_hex_hmac_sha256_of_the_exact_body() -> None:
    assert sign(SECRET, BODY) == EXPECTED


def test_a_receiver_accepts_the_signature_of_the_body_it_got() -> None:
    assert signature_matches(SECRET, BODY, EXPECTED)


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        (b"another-secret", BODY, EXPECTED),
        (SECRET, BODY.replace(b"2", b"3"), EXPECTED),
        (SECRET, BODY + b" ", EXPECTED),
        (SECRET, BODY, EXPECTED.removeprefix("sha256=")),
        (SECRET, BODY, EXPECTED.upper()),
        (SECRET, BODY, None),
        (SECRET, BODY, ""),
    ],
    ids=["wrong-secret", "changed-body", "reformatted-body", "no-prefix", "case", "none", "empty"],
)
def test_a_receiver_refuses_anything_else(secret: bytes, body: bytes, header: str | None) -> None:
    assert not signature_matches(secret, body, header)


def test_retries_back_off_from_five_seconds_doubling_to_ten_minutes() -> None:
    schedule = [retry_delay(attempts).total_seconds() for attempts in range(1, 11)]
    assert schedule == [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]


def test_the_backoff_stays_at_its_cap_however_many_attempts() -> None:
    assert retry_delay(10_000) == timedelta(minutes=10)


def test_there_is_no_retry_before_a_first_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        retry_delay(0)
