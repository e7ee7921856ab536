"""Contact windows in the customer's local time, holidays and DST (SPEC 4.1, 4.2). Pure, no clock.

Rules:
- a channel uses its own window, else `default`; a day not listed in that window is closed (so the
  policy's `weekend` days are closed unless the window lists them explicitly);
- public holidays (the `holidays` package for calendar.country/subdivision, plus extra_holidays) are
  closed unless `windows.holidays: open`;
- hours are local wall-clock time on every day, DST days included. A window opening inside a
  spring-forward gap opens at the first instant after the gap; in a fall-back overlap the first
  occurrence counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from ..dsl.timeparse import DAYS

HORIZON_DAYS = 400  # a window that does not open within this is treated as never opening
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Slot:
    at: dt.datetime  # aware, in the customer's zone
    reason: str | None  # None (at the trigger), "window" or "holiday"


@lru_cache(maxsize=65536)  # the same few days and hours recur for every customer of a zone
def local_instant(date: dt.date, minutes: int, tz: ZoneInfo) -> dt.datetime:
    """Local wall-clock `minutes` after midnight on `date`, as an aware datetime.

    A wall time inside a spring-forward gap does not exist: the first existing minute after it is used.
    An ambiguous wall time (fall-back overlap) takes its first occurrence (fold=0)."""
    if minutes >= 1440:
        date, minutes = date + dt.timedelta(days=1), minutes - 1440
    naive = dt.datetime.combine(date, dt.time(minutes // 60, minutes % 60))
    for _ in range(24 * 60):
        aware = naive.replace(tzinfo=tz)
        if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
            return aware
        naive += dt.timedelta(minutes=1)
    raise ValueError(f"no valid local time near {date} {minutes} in {tz}")  # pragma: no cover


class ContactCalendar:
    def __init__(self, windows: dict[str, dict[str, list]], holidays_open: bool = False, country: str | None = None,
                 subdivision: str | None = None, extra_holidays=(), weekend=("sat", "sun")):
        self.windows = {ch: {d: tuple(tuple(r) for r in ranges) for d, ranges in days.items()}
                        for ch, days in windows.items()}
        self.holidays_open = holidays_open
        self.country, self.subdivision = country, subdivision
        self.extra = frozenset(extra_holidays)
        self.weekend = tuple(weekend)
        self._country_holidays = None
        self._ranges = lru_cache(maxsize=65536)(self._ranges_uncached)
        # asked for every send, at the same few tick instants for every customer of a zone. No fold in the
        # key: windows are read on the wall clock, so the two readings of a time shown twice (equal keys
        # in one zone) have the same answer (tests/test_cap_dst.py)
        self.next_slot = lru_cache(maxsize=65536)(self._next_slot)

    def of_country(self, country: str) -> "ContactCalendar":
        """The same windows, weekend and extra holidays with another country's public holidays (a
        subdivision is one of this calendar's country: it does not carry over)."""
        return ContactCalendar(self.windows, self.holidays_open, country, None, self.extra, self.weekend)

    # -- days -----------------------------------------------------------------------------------

    def _holiday_table(self):
        if self._country_holidays is None and self.country:
            import holidays

            try:
                self._country_holidays = holidays.country_holidays(self.country, subdiv=self.subdivision)
            except NotImplementedError:  # a customer's code the package has no holidays for (AC, IC ...):
                self._country_holidays = {}  # only extra_holidays close it (docs/language.md#calendar)
        return self._country_holidays

    def holiday_name(self, date: dt.date) -> str | None:
        if date in self.extra:
            return "extra holiday"
        table = self._holiday_table()
        return table.get(date) if table is not None else None

    def is_holiday(self, date: dt.date) -> bool:
        return self.holiday_name(date) is not None

    def window_of(self, channel: str | None) -> dict[str, tuple]:
        return self.windows.get(channel) or self.windows.get("default") or {}

    def has_window(self, channel: str) -> bool:
        return any(self.window_of(channel).values())

    def _ranges_uncached(self, channel: str, date: dt.date) -> tuple[tuple[int, int], ...] | str:
        """Open ranges of the day in minutes, or "holiday" when the day is a closed holiday."""
        if not self.holidays_open and self.is_holiday(date):
            return "holiday"
        return self.window_of(channel).get(DAYS[date.weekday()], ())

    def opening(self, channel: str, date: dt.date) -> int | None:
        ranges = self._ranges(channel, date)
        return ranges[0][0] if ranges and ranges != "holiday" else None

    # -- instants -------------------------------------------------------------------------------

    def is_open(self, channel: str, instant: dt.datetime, tz: ZoneInfo) -> bool:
        local = instant.astimezone(tz)
        ranges = self._ranges(channel, local.date())
        if ranges == "holiday":
            return False
        minute = local.hour * 60 + local.minute
        return any(lo <= minute < hi for lo, hi in ranges)

    def _next_slot(self, channel: str, earliest: dt.datetime, tz: ZoneInfo) -> Slot | None:
        """The first instant >= earliest inside the channel's window on an open day (None: never)."""
        local = earliest.astimezone(tz)
        reason = None  # what holds a contact at `earliest`: a holiday that day, else the window
        for offset in range(HORIZON_DAYS):
            date = local.date() + dt.timedelta(days=offset)
            ranges = self._ranges(channel, date)
            if ranges == "holiday":
                reason = reason or "holiday"
                continue
            reason = reason or "window"
            for lo, hi in ranges:
                start, end = local_instant(date, lo, tz), local_instant(date, hi, tz)
                candidate = max(start, local)
                if candidate < end:
                    return Slot(candidate, None if candidate == local else reason)
        return None

    def trigger_instant(self, date: dt.date, time: int | None, channel: str | None, tz: ZoneInfo) -> dt.datetime:
        """A step's trigger: the given local time, else the channel's opening that day (else midnight)."""
        if time is None and channel is not None:
            time = self.opening(channel, date)
        return local_instant(date, time or 0, tz)
