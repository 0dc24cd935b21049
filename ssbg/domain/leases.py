"""Leases on a wall clock that can jump back (docs/reliability.md, "The clock jumping
backwards across a lease").

A process doing long work (streaming a backup, verifying a restore) holds a lease on its row:
it renews it every third of its length, writing when it renewed (``updated_at``) and when the
lease ends (``lease_expires_at``); a sweep fails the work once the lease has lapsed. Both are
wall-clock times, and the wall clock can jump back (an NTP step, a VM restored from a
snapshot): a lease renewed just before a jump of a day would then end a day from now, and
work whose process died would stay in flight for that day.

The rule: **a lease renewed after now was renewed by a clock ahead of ours** (ours went back
since, or the renewing replica's runs ahead — by more than ``SKEW_TOLERANCE``), so the sweep
counts it again from now, with the length it was taken for:
``now + (lease_expires_at - renewed_at)``. A live holder renews it within a third of that
anyway; a dead one's work is failed by the first sweep one lease later, whatever the size of
the jump. Nothing is failed early, so a jump never fails a live holder's work. The length
comes from the row, not from this process's setting: replicas with different lease settings
never shorten each other's leases.
"""

from datetime import datetime, timedelta

# Replicas' clocks differ by a little even when synchronised: a lease renewed less than this
# ahead of now is left as it is (it lapses that much later at most), so ordinary skew never
# makes every sweep rewrite the other replicas' leases.
SKEW_TOLERANCE = timedelta(seconds=1)


def ahead_of(now: datetime) -> datetime:
    """Leases renewed after this moment were renewed by a clock ahead of ``now``."""
    return now + SKEW_TOLERANCE


def restarted_lease(renewed_at: datetime, expires_at: datetime, now: datetime) -> datetime:
    """When a lease renewed at ``renewed_at`` (after ``now``) ends, counted again from now."""
    return now + (expires_at - renewed_at)
