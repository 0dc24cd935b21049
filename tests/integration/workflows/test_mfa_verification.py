"""TOTP verification through the real service and database, with a fixed clock."""

from datetime import timedelta

import pyotp
import pytest

from ssbg.domain.enums import Role
from ssbg.domain.errors import AuthMfaInvalid, AuthMfaRequired
from ssbg.domain.identity import RequestContext
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import actor, create_api_key

# A TOTP step is claimed by a compare-and-set UPDATE.
pytestmark = pytest.mark.both_backends

CONTEXT = RequestContext(request_id="mfa-test", source_ip="192.0.2.10")


async def test_valid_code_passes_once_and_is_audited(services: Services, clock: FixedClock) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    assert admin.totp_secret is not None
    code = pyotp.TOTP(admin.totp_secret).at(clock.now())

    await services.auth.verify_mfa(actor(admin, CONTEXT), code)
    with pytest.raises(AuthMfaInvalid):
        await services.auth.verify_mfa(actor(admin, CONTEXT), code)

    successes = await audit_entries(services.db, "MFA_SUCCESS")
    failures = await audit_entries(services.db, "MFA_FAILURE")
    assert [e.actor_id for e in successes] == [admin.record.id]
    assert failures[-1].details == {"reason": "INVALID_OR_REPLAYED"}
    assert code not in str(failures[-1].details)


async def test_wrong_code_fails(services: Services, clock: FixedClock) -> None:
    admin = await create_api_key(services, Role.SUPER_ADMIN)
    assert admin.totp_secret is not None
    right = pyotp.TOTP(admin.totp_secret).at(clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    with pytest.raises(AuthMfaInvalid):
        await services.auth.verify_mfa(actor(admin, CONTEXT), wrong)


@pytest.mark.parametrize("offset", [-30, 30])
async def test_previous_and_next_step_are_accepted(
    services: Services, clock: FixedClock, offset: int
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    assert admin.totp_secret is not None
    code = pyotp.TOTP(admin.totp_secret).at(clock.now() + timedelta(seconds=offset))

    await services.auth.verify_mfa(actor(admin, CONTEXT), code)


async def test_an_older_code_fails_after_a_newer_one_was_used(
    services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    totp = pyotp.TOTP(admin.totp_secret or "")
    older = totp.at(clock.now() - timedelta(seconds=30))
    await services.auth.verify_mfa(actor(admin, CONTEXT), totp.at(clock.now()))

    with pytest.raises(AuthMfaInvalid):
        await services.auth.verify_mfa(actor(admin, CONTEXT), older)


async def test_a_later_code_passes_after_time_moves_on(
    services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    totp = pyotp.TOTP(admin.totp_secret or "")
    await services.auth.verify_mfa(actor(admin, CONTEXT), totp.at(clock.now()))
    clock.advance(seconds=30)

    await services.auth.verify_mfa(actor(admin, CONTEXT), totp.at(clock.now()))


async def test_missing_code_is_mfa_required(services: Services) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    with pytest.raises(AuthMfaRequired):
        await services.auth.verify_mfa(actor(admin, CONTEXT), None)

    assert (await audit_entries(services.db, "MFA_FAILURE"))[-1].details == {"reason": "MISSING"}


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR])
async def test_keys_without_a_secret_never_pass_mfa(
    services: Services, clock: FixedClock, role: Role
) -> None:
    key = await create_api_key(services, role)
    assert key.totp_secret is None
    some_code = pyotp.TOTP(pyotp.random_base32()).at(clock.now())

    with pytest.raises(AuthMfaInvalid):
        await services.auth.verify_mfa(actor(key, CONTEXT), some_code)

    assert (await audit_entries(services.db, "MFA_FAILURE"))[-1].details == {
        "reason": "NOT_ENROLLED"
    }
