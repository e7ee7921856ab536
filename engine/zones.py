"""Customers without a time zone follow the policy's clock (SPEC 4.1). When their country keeps other
clocks, their contacts go out at the policy's hours, not theirs: early or late, and maybe outside the
hours a law allows there. `collect simulate` warns about them before the policy runs.

A country's zones come from the IANA database's zone.tab (shipped by the tzdata package, a dependency).
The policy's own country is taken to be on the policy's clock (a policy for Spain is not warned about
the Canary Islands); another country is reported when any of its zones keeps another clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class OffClock:
    """The customers of one country without a time zone, and that country's zones whose clocks differ
    from the policy's."""

    country: str
    customers: tuple[str, ...]
    zones: tuple[str, ...]

    def line(self, policy_zone: str) -> str:
        shown = ", ".join(self.customers[:3]) + (", ..." if len(self.customers) > 3 else "")
        zones = ", ".join(self.zones[:3]) + (", ..." if len(self.zones) > 3 else "")
        count = "1 customer" if len(self.customers) == 1 else f"{len(self.customers)} customers"
        follow = "follows" if len(self.customers) == 1 else "follow"
        return (f"{count} in {self.country} without a timezone ({shown}) {follow} the policy's {policy_zone} "
                f"hours, but {self.country} keeps other clocks ({zones}): give them a timezone column "
                f"(docs/files.md)")


@lru_cache(maxsize=1)
def country_zones() -> dict[str, tuple[str, ...]]:
    """ISO 3166 country code -> its IANA zones."""
    from importlib.resources import files

    text = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            code, _coordinates, zone = line.split("\t")[:3]
            found.setdefault(code, []).append(zone)
    return {code: tuple(zones) for code, zones in found.items()}


@lru_cache(maxsize=512)
def _clock(zone: str, year: int) -> tuple[dt.timedelta | None, ...]:
    """The zone's UTC offsets in the middle of January and of July: its winter and summer clocks."""
    tz = ZoneInfo(zone)
    return tuple(dt.datetime(year, month, 15, 12, tzinfo=tz).utcoffset() for month in (1, 7))


def off_clock(customers, policy_zone: str, year: int) -> list[OffClock]:
    """By country, the customers without a time zone whose country keeps clocks other than the policy
    zone's in `year`; `customers` have `id`, `timezone` and `country` (an ISO code or None)."""
    zones = country_zones()
    unzoned: dict[str, list[str]] = {}
    for c in customers:
        if not c.timezone and c.country:
            unzoned.setdefault(c.country.upper(), []).append(c.id)
    own = _clock(policy_zone, year)
    found = []
    for country, ids in sorted(unzoned.items()):
        theirs = zones.get(country, ())
        if policy_zone in theirs:
            continue
        differ = tuple(z for z in theirs if _clock(z, year) != own)
        if differ:
            found.append(OffClock(country, tuple(sorted(ids)), differ))
    return found
