"""Contact windows in local time: weekends, holidays, DST, and next_slot minimality (hypothesis)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collect.dsl.timeparse import DAYS
from collect.engine.calendar import ContactCalendar, local_instant

WEEKDAYS = {d: [(480, 1140)] for d in DAYS[:5]}
LIMA, NY = ZoneInfo("America/Lima"), ZoneInfo("America/New_York")


def at(tz, *args):
    return dt.datetime(*args, tzinfo=tz)


@pytest.mark.parametrize("start, expected, reason", [
    (at(LIMA, 2026, 11, 23, 7, 0), at(LIMA, 2026, 11, 23, 8, 0), "window"),  # before opening
    (at(LIMA, 2026, 11, 23, 9, 30), at(LIMA, 2026, 11, 23, 9, 30), None),  # inside
    (at(LIMA, 2026, 11, 23, 19, 0), at(LIMA, 2026, 11, 24, 8, 0), "window"),  # the end is exclusive
    (at(LIMA, 2026, 11, 21, 10, 0), at(LIMA, 2026, 11, 23, 8, 0), "window"),  # weekend
    (at(LIMA, 2026, 7, 28, 10, 0), at(LIMA, 2026, 7, 30, 8, 0), "holiday"),  # 28-29 July, Fiestas Patrias
    # closed at 20:00 the evening before: the window holds it at its trigger, then the holidays
    (at(LIMA, 2026, 7, 27, 20, 0), at(LIMA, 2026, 7, 30, 8, 0), "window"),
    (at(LIMA, 2026, 12, 24, 10, 0), at(LIMA, 2026, 12, 28, 8, 0), "holiday"),  # extra 24th, Christmas, weekend
    (at(ZoneInfo("UTC"), 2026, 11, 23, 12, 0), at(LIMA, 2026, 11, 23, 8, 0), "window"),  # 07:00 in Lima
])
def test_next_slot(start, expected, reason):
    cal = ContactCalendar({"default": WEEKDAYS}, country="PE", extra_holidays=[dt.date(2026, 12, 24)])
    slot = cal.next_slot("email", start, LIMA)
    assert (slot.at, slot.reason) == (expected, reason)


def test_holidays_open_and_us_thanksgiving():
    us = ContactCalendar({"default": WEEKDAYS}, country="US")
    assert us.holiday_name(dt.date(2026, 11, 26)) == "Thanksgiving Day"
    assert us.next_slot("sms", at(NY, 2026, 11, 26, 9), NY).at == at(NY, 2026, 11, 27, 8)
    opened = ContactCalendar({"default": WEEKDAYS}, holidays_open=True, country="US")
    assert opened.next_slot("sms", at(NY, 2026, 11, 26, 9), NY).reason is None


def test_channel_window_overrides_default_and_missing_window_never_opens():
    cal = ContactCalendar({"default": WEEKDAYS, "email": {"sun": [(600, 660)]}})
    assert cal.next_slot("email", at(LIMA, 2026, 11, 23, 9), LIMA).at == at(LIMA, 2026, 11, 29, 10)
    empty = ContactCalendar({"email": {}})
    assert not empty.has_window("sms") and empty.next_slot("sms", at(LIMA, 2026, 11, 23, 9), LIMA) is None


def test_windows_are_local_wall_clock_across_dst():
    cal = ContactCalendar({"default": {d: [(480, 1140)] for d in DAYS}})
    # spring forward (2026-03-08) and fall back (2026-11-01) in New York: still 08:00 local
    for day in (dt.date(2026, 3, 8), dt.date(2026, 11, 1)):
        slot = cal.next_slot("sms", dt.datetime.combine(day, dt.time(3), NY), NY)
        assert slot.at.astimezone(NY).hour == 8 and slot.at.date() == day
    # a window opening inside the spring-forward gap opens at the first instant after it
    assert local_instant(dt.date(2026, 3, 8), 150, NY) == at(NY, 2026, 3, 8, 3, 0)
    # an ambiguous time takes its first occurrence
    assert local_instant(dt.date(2026, 11, 1), 90, NY).utcoffset() == dt.timedelta(hours=-4)
    # Santiago changes at midnight: the day still opens at 08:00 local
    cl = ZoneInfo("America/Santiago")
    slot = cal.next_slot("sms", at(cl, 2026, 9, 5, 23, 0), cl)
    assert slot.at.astimezone(cl).replace(tzinfo=None) == dt.datetime(2026, 9, 6, 8, 0)


RANGES = st.lists(st.tuples(st.integers(0, 47), st.integers(1, 8)), min_size=0, max_size=2).map(
    lambda pairs: sorted({(a * 30, min(1440, a * 30 + b * 30)) for a, b in pairs}))


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({d: RANGES for d in DAYS}).filter(lambda w: any(w.values())),
       st.sampled_from(["America/Lima", "America/New_York", "Europe/Madrid", "Asia/Kolkata", "America/Santiago"]),
       st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 20)),
       st.booleans())
def test_next_slot_is_open_and_minimal(windows, zone, naive, holidays_open):
    tz = ZoneInfo(zone)
    cal = ContactCalendar({"default": windows}, holidays_open=holidays_open, country="ES")
    start = naive.replace(tzinfo=dt.timezone.utc, second=0, microsecond=0)
    slot = cal.next_slot("sms", start, tz)
    if slot is None:
        return
    assert slot.at >= start
    assert cal.is_open("sms", slot.at, tz)
    local = slot.at.astimezone(tz)
    assert holidays_open or not cal.is_holiday(local.date())
    # minimal: no open minute between the start and the slot (checked minute by minute, up to 3 days)
    probe, limit = start, min(slot.at, start + dt.timedelta(days=3))
    while probe < limit:
        assert not cal.is_open("sms", probe, tz), probe
        probe += dt.timedelta(minutes=30 if probe.minute % 30 == 0 else 1)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({d: RANGES for d in DAYS}), st.datetimes(min_value=dt.datetime(2026, 1, 1),
                                                                        max_value=dt.datetime(2026, 12, 31)))
def test_is_open_agrees_with_a_naive_reading(windows, naive):
    tz = ZoneInfo("Europe/Madrid")
    cal = ContactCalendar({"default": windows})
    instant = naive.replace(tzinfo=dt.timezone.utc)
    local = instant.astimezone(tz)
    minute = local.hour * 60 + local.minute
    expected = any(a <= minute < b for a, b in windows[DAYS[local.weekday()]])
    assert cal.is_open("sms", instant, tz) == expected
