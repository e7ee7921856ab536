"""Caps of whole days count days on the customer's clock (docs/language.md, caps). Around a DST change
a local time is shown twice or never: the window's start and the moment a send leaves the window must
still agree, or the core holds a contact past the cap and names a wake that has already passed."""

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from collect.engine.decide import cap_shift

UTC = dt.timezone.utc
DAY = 86400
CHANGES = [dt.datetime(2026, 3, 6, tzinfo=UTC), dt.datetime(2026, 10, 23, tzinfo=UTC),  # US / Europe
           dt.datetime(2026, 4, 2, tzinfo=UTC), dt.datetime(2026, 9, 4, tzinfo=UTC)]  # southern hemisphere


@settings(max_examples=400, deadline=None)
@given(zone=st.sampled_from(["America/New_York", "Europe/Madrid", "Australia/Lord_Howe", "America/Santiago"]),
       base=st.sampled_from(CHANGES), minutes=st.integers(0, 12 * 1440), days=st.sampled_from([1, 7]))
def test_a_send_has_left_the_window_when_the_cap_says_it_frees(zone, base, minutes, days):
    tz = ZoneInfo(zone)
    sent = base + dt.timedelta(minutes=minutes)
    free = cap_shift(sent, days * DAY, tz)
    assert free > sent
    assert sent <= cap_shift(free, -days * DAY, tz)  # the window ending at `free` no longer holds it


def test_the_hour_shown_twice_does_not_make_a_day_25_hours_long():
    """An SMS at 01:05 EST in the hour New York shows twice (2026-11-01), the next due at 01:30 the day
    after: 24 h 25 min later and a whole day on the clock, it goes (it was held, with a wake in the past)."""
    ny = ZoneInfo("America/New_York")
    sent = dt.datetime(2026, 11, 1, 1, 5, fold=1, tzinfo=ny).astimezone(UTC)
    now = dt.datetime(2026, 11, 2, 1, 30, tzinfo=ny).astimezone(UTC)
    assert sent <= cap_shift(now, -DAY, ny)
