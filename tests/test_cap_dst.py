"""Caps of whole days count days on the customer's clock (docs/language.md, caps). Around a DST change
a local time is shown twice or never: the window's start and the moment a send leaves the window must
still agree, or the core holds a contact past the cap (or longer than the cap says) and names a wake
that has already passed."""

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from collect.engine.decide import cap_shift
from coretools import dst_changes

UTC = dt.timezone.utc
DAY = 86400
ZONES = ["America/New_York", "Europe/Madrid", "Australia/Lord_Howe", "America/Santiago"]


CHANGES = {zone: dst_changes(zone) for zone in ZONES}


@st.composite
def near_a_change(draw, days: int):
    """A zone and an instant within three hours of one of its DST changes, or of `days` days before one
    (a send whose days later fall in the hour skipped or shown twice)."""
    zone = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(CHANGES[zone])) - dt.timedelta(days=draw(st.sampled_from([0, days])))
    return zone, change + dt.timedelta(seconds=draw(st.integers(-3 * 3600, 3 * 3600)))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([1, 7]).flatmap(lambda days: st.tuples(st.just(days), near_a_change(days))))
def test_a_send_has_left_the_window_when_the_cap_says_it_frees(case):
    days, (zone, sent) = case
    tz = ZoneInfo(zone)
    free = cap_shift(sent, days * DAY, tz)
    assert free > sent
    assert sent <= cap_shift(free, -days * DAY, tz)  # the window ending at `free` no longer holds it
    # ... and a second earlier it still did: a contact the cap held goes at the first moment it may
    assert cap_shift(free - dt.timedelta(seconds=1), -days * DAY, tz) < sent


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([1, 7]).flatmap(lambda days: st.tuples(st.just(days), near_a_change(days))),
       st.integers(1, 7200))
def test_a_window_start_never_moves_back(case, step):
    """As the clock moves on, the start of the window does not move back: a send that has left the
    window does not come back into it (a skipped local time reads as the end of the jump, not later)."""
    days, (zone, at) = case
    tz = ZoneInfo(zone)
    later = at + dt.timedelta(seconds=step)
    assert cap_shift(at, -days * DAY, tz) <= cap_shift(later, -days * DAY, tz)


def test_the_hour_shown_twice_does_not_make_a_day_25_hours_long():
    """An SMS at 01:05 EST in the hour New York shows twice (2026-11-01), the next due at 01:30 the day
    after: 24 h 25 min later and a whole day on the clock, it goes (it was held, with a wake in the past)."""
    ny = ZoneInfo("America/New_York")
    sent = dt.datetime(2026, 11, 1, 1, 5, fold=1, tzinfo=ny).astimezone(UTC)
    now = dt.datetime(2026, 11, 2, 1, 30, tzinfo=ny).astimezone(UTC)
    assert sent <= cap_shift(now, -DAY, ny)


def test_both_readings_of_a_repeated_time_keep_their_own_window():
    """01:30 on 2026-11-01 in New York is two instants an hour apart, which compare equal as local
    datetimes: the remembered window start of one must not be handed to the other, whichever comes first."""
    ny = ZoneInfo("America/New_York")
    first = dt.datetime(2026, 11, 1, 1, 30, tzinfo=ny)  # 05:30 UTC
    second = first.replace(fold=1)  # 06:30 UTC
    starts = {cap_shift(first, -DAY, ny), cap_shift(second, -DAY, ny)}
    assert {cap_shift(second, -DAY, ny), cap_shift(first, -DAY, ny)} == starts
    assert len(starts) == 2


# -- the whole decision core in the hour shown twice -----------------------------------------------------

def _policy(times: list[str], cap_max: int) -> str:
    steps = "\n".join(f"          - {{ id: d{n}, at: due+{1 + n // 2}d {t}, send: sms, template: m }}"
                      for n, t in enumerate(times))
    return f"""
    caps:
      - {{ channel: sms, max: {cap_max}, per: 1d }}
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
{steps}
    """


def _window_start(at: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The instant a day on the customer's clock before `at` (docs/language.md, caps), in New York in the
    days around 2026-11-01: while the clock shows 01:00-02:00 the second time, it counts as standing at
    the end of that hour; of a local time shown twice, the later reading."""
    local = at.astimezone(tz)
    clock = local.replace(tzinfo=None)
    if local.fold:
        clock = dt.datetime(2026, 11, 1, 2) - dt.timedelta(microseconds=1)
    back = clock - dt.timedelta(days=1)
    return max(back.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))


TIMES = st.sampled_from([f"{h:02d}:{m:02d}" for h in (0, 1, 2) for m in (0, 10, 30, 50)])


@settings(max_examples=60, deadline=None)
@given(times=st.lists(TIMES, min_size=2, max_size=6), cap_max=st.integers(1, 2), tick=st.sampled_from([600, 900, 3600]))
def test_a_cap_of_days_holds_and_frees_on_time_in_the_hour_shown_twice(tmp_path_factory, times, cap_max, tick):
    """SMS steps between 00:00 and 03:00, two a day, around the night New York shows 01:00-02:00 twice
    (2026-11-01), under a cap of one or two a day, the window open all day: no window of a day on the
    customer's clock ever holds more than the cap, every step goes out, and a step the cap held goes at
    the first tick the cap lets it (at the tick before, the cap was full)."""
    import textwrap

    from coretools import BASE, customer, invoice, run, runtime

    ny = ZoneInfo("America/New_York")
    base = BASE.replace('mon-fri: "08:00-19:00", sat: "09:00-13:00"', 'mon-sun: "00:00-24:00"')
    rt = runtime(textwrap.dedent(_policy(times, cap_max)), tmp_path_factory.mktemp("p"), base=base)
    c = customer(timezone="America/New_York", phone="+12025550143")
    invoice(c, "F1", "2026-10-30")
    result = run(rt, [c], "2026-10-30", 8, tick_s=tick)
    sent = sorted(d.at.astimezone(UTC) for d in result.decisions if d.status == "sent")
    assert len(sent) == len(times)  # none lost, none twice
    for at in sent:
        inside = [s for s in sent if _window_start(at, ny) < s <= at]
        assert len(inside) <= cap_max, (at.astimezone(ny), [s.astimezone(ny) for s in inside])
    held = {d.step for d in result.decisions if d.status == "deferred" and d.reason.startswith("cap:")}
    for d in result.decisions:
        if d.status == "sent" and d.step in held:
            before = d.at.astimezone(UTC) - dt.timedelta(seconds=tick)
            full = [s for s in sent if _window_start(before, ny) < s <= before]
            assert len(full) >= cap_max, (d.step, d.at.astimezone(ny), "the cap had room a tick earlier")


def test_the_caches_of_moments_tell_the_two_readings_of_a_time_shown_twice_apart():
    """01:10 in New York on 2026-11-01 is two instants (EDT, then EST) that compare equal and hash alike
    in one zone: the caches keyed by moment keep them apart (a cap counted the second send an hour early,
    and the contacts file wrote its offset wrong, when they did not)."""
    from collect.engine.decide import _utc
    from collect.engine.simrun import _stamp

    ny = ZoneInfo("America/New_York")
    first = dt.datetime(2026, 11, 1, 1, 10, tzinfo=ny)
    second = first.replace(fold=1)
    assert [_utc(m, ny, m.fold) for m in (first, second)] == [m.astimezone(UTC) for m in (first, second)]
    assert [_stamp(m, ny, m.fold) for m in (first, second)] == ["2026-11-01T01:10:00-04:00",
                                                                 "2026-11-01T01:10:00-05:00"]


def test_the_window_caches_answer_both_readings_of_a_time_shown_twice_alike():
    """The calendar's `next_slot` and a compliance window's `next_open` are cached by local moment and
    zone, so the second reading of 01:10 on 2026-11-01 in New York gets the first reading's entry. That
    is right because windows are read on the wall clock: both readings are the same minute of the day,
    and a later slot is a window's opening (a first reading), the same instant whichever was asked
    first. A window answer that told the readings apart would make these caches wrong, and fails here."""
    from collect.engine.calendar import ContactCalendar
    from collect.engine.compliance import _Window

    ny = ZoneInfo("America/New_York")
    sunday = {"sun": [(60, 80), (100, 180)]}  # 01:00-01:20 and 01:40-03:00, around the repeated hour
    window_doc = {"id": "hours", "channels": ["any"], "days": sunday, "holidays": "open"}
    for minute in (65, 90, 110):
        first = dt.datetime(2026, 11, 1, 1, minute - 60, tzinfo=ny)
        second = first.replace(fold=1)
        fresh_cal, warm_cal = ContactCalendar({"default": sunday}), ContactCalendar({"default": sunday})
        fresh_win, warm_win = (_Window("p", "US", window_doc) for _ in range(2))
        warm_cal.next_slot("sms", first, ny), warm_win.next_open(first)
        answers = [(fresh_cal.next_slot("sms", second, ny), warm_cal.next_slot("sms", second, ny)),
                   (fresh_win.next_open(second), warm_win.next_open(second))]
        for fresh, warm in answers:
            fresh_at, warm_at = getattr(fresh, "at", fresh), getattr(warm, "at", warm)
            assert warm == fresh, minute  # equal on the wall clock (and the reason)
            if fresh_at > second:  # a later slot: the same instant, not only the same reading
                assert warm_at.astimezone(UTC) == fresh_at.astimezone(UTC), minute


def test_a_window_over_the_hour_shown_twice_is_open_at_both_showings():
    """docs/language.md (windows): a window of 01:00-02:00 is open for two hours the night the clock
    falls back, and one that opens in the hour the clock skips opens at the end of the jump."""
    from collect.engine.calendar import ContactCalendar

    ny = ZoneInfo("America/New_York")
    fall = ContactCalendar({"default": {"sun": [(60, 120)]}})
    for fold in (0, 1):  # 05:30 and 06:30 UTC
        at = dt.datetime(2026, 11, 1, 1, 30, fold=fold, tzinfo=ny).astimezone(UTC)
        slot = fall.next_slot("sms", at, ny)
        assert (slot.at.astimezone(UTC), slot.reason) == (at, None)
    spring = ContactCalendar({"default": {"sun": [(150, 240)]}})  # opens at 02:30, skipped on 2026-03-08
    slot = spring.next_slot("sms", dt.datetime(2026, 3, 8, 1, 0, tzinfo=ny), ny)
    assert slot.at.astimezone(UTC) == dt.datetime(2026, 3, 8, 3, 0, tzinfo=ny).astimezone(UTC)
