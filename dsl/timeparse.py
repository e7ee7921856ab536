"""The small literal syntaxes of the policy file: durations, clock times, day ranges, triggers.

Each parser returns a value or raises ValueError with a message meant for an analyst.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Ten years either way: far beyond any cadence, and far inside what dates and timedeltas can hold,
# so that no literal in a policy can overflow a date computation at run time.
MAX_DAYS = 3650
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_TRIGGER = re.compile(r"^\s*(due|event|promise)\s*(?:([+-])\s*(\d+)\s*d)?\s*(?:\s(\d{1,2}:\d{2}))?\s*$")


def parse_duration(text: str) -> int:
    """'7d' -> minutes. Units: m, h, d, w."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a duration; write a whole number and a unit: 30m, 12h, 7d, 2w")
    digits = match.group(1)
    if len(digits) > 9 or int(digits) * _UNIT_MINUTES[match.group(2)] > MAX_DAYS * 1440:
        raise ValueError(f"'{str(text).strip()}' is too long; durations go up to {MAX_DAYS}d (ten years)")
    return int(digits) * _UNIT_MINUTES[match.group(2)]


def format_duration(minutes: int) -> str:
    for unit in ("w", "d", "h"):
        if minutes and minutes % _UNIT_MINUTES[unit] == 0:
            return f"{minutes // _UNIT_MINUTES[unit]}{unit}"
    return f"{minutes}m"


def parse_time(text: str, allow_24: bool = False) -> int:
    """'08:30' -> minutes after midnight; '24:00' only as the end of a range."""
    match = _TIME.match(str(text).strip())
    if not match:
        raise ValueError(f"'{text}' is not a time; write HH:MM in 24-hour form, e.g. 08:00")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if (hours, minutes) == (24, 0) and allow_24:
        return 1440
    if hours > 23 or minutes > 59:
        raise ValueError(f"'{text}' is not a valid time of day (00:00 to 23:59{', or 24:00 as an end' if allow_24 else ''})")
    return hours * 60 + minutes


def format_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_time_ranges(text: str) -> list[tuple[int, int]]:
    """'08:00-12:00, 14:00-18:00' -> [(480, 720), (840, 1080)]."""
    ranges = []
    for part in str(text).split(","):
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise ValueError(f"'{part.strip()}' is not a time range; write HH:MM-HH:MM, e.g. 08:00-19:00")
        lo, hi = parse_time(start), parse_time(end, allow_24=True)
        if hi <= lo:
            raise ValueError(f"time range '{part.strip()}' ends before it starts")
        ranges.append((lo, hi))
    return sorted(ranges)


def parse_days(text: str) -> list[str]:
    """'mon-fri' / 'sat' / 'mon,wed,fri' / 'mon-fri,sun' -> day names in week order."""
    days: set[str] = set()
    for part in str(text).lower().split(","):
        part = part.strip()
        first, sep, last = part.partition("-")
        for name in (first, last) if sep else (first,):
            if name not in DAYS:
                raise ValueError(f"'{name}' is not a day; use mon, tue, wed, thu, fri, sat, sun")
        if sep:
            i, j = DAYS.index(first), DAYS.index(last)
            if j < i:
                raise ValueError(f"day range '{part}' runs backwards; write it from the earlier day, e.g. mon-fri")
            days.update(DAYS[i : j + 1])
        else:
            days.add(first)
    return [d for d in DAYS if d in days]


@dataclass(frozen=True)
class Trigger:
    anchor: str  # due | event | promise
    days: int  # signed offset in days
    time: int | None  # minutes after local midnight, or None for the window's opening

    def __str__(self) -> str:
        text = self.anchor
        if self.days:
            text += f"{'+' if self.days > 0 else '-'}{abs(self.days)}d"
        if self.time is not None:
            text += f" {format_time(self.time)}"
        return text


def parse_trigger(text: str) -> Trigger:
    match = _TRIGGER.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a trigger; write due-5d, due+1d 10:00, event+1d or promise-1d")
    anchor, sign, days, time = match.groups()
    if len(days or "") > 9 or int(days or 0) > MAX_DAYS:
        raise ValueError(f"'{text}' is too far from its {anchor} date; offsets go up to ±{MAX_DAYS}d (ten years)")
    offset = int(days or 0) * (-1 if sign == "-" else 1)
    return Trigger(anchor, offset, parse_time(time) if time else None)


@lru_cache(maxsize=1)
def time_zones() -> frozenset[str]:
    """The IANA time zone names a policy, a portfolio or --timezone may give: not `localtime`, which is
    whatever zone the machine running collect is set to, nor the leap-second `right/` and `posix/`
    copies, so that a file means the same on every machine."""
    return frozenset(z for z in zoneinfo.available_timezones()
                     if z != "localtime" and not z.startswith(("right/", "posix/")))


def closest_zone(name: str) -> str | None:
    """The zone a misspelt or partial name most likely means, for a 'did you mean': the zone of that city
    (`Bogota`, `sao paulo`: America/Bogota, America/Sao_Paulo), else a name a slip of the keyboard away
    (`America/Bogata`); merely alike names are no help (difflib offers `Libya` for `Lima`, `America/Nuuk`
    for `America`)."""
    from .diagnostics import near_typo

    city = name.strip().replace(" ", "_").lower().rsplit("/", 1)[-1]
    cities = sorted(z for z in time_zones() if z.rsplit("/", 1)[-1].lower() == city)
    return cities[0] if cities else near_typo(name, time_zones())
