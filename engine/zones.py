"""Customers without a time zone follow the policy's clock (SPEC 4.1). When their country keeps other
clocks, their contacts go out at the policy's hours, not theirs: early or late, and maybe outside the
hours a law allows there. `collect simulate` and `collect import --policy` warn about them.

A country's zones come from the IANA database's zone.tab (zone1970.tab should a tzdata release drop it),
shipped by the tzdata package, a dependency. The policy's own country (one of whose zones is the policy's
zone, or the zone it is another name of) is taken to be on the policy's clock: a policy for Spain is not
warned about the Canary Islands. Another country is reported when its main zone (zone.tab lists the most
populous first) or most of its zones keep another clock than the policy's: a Lima policy is not warned
about Ecuador for the Galapagos, a Guatemala one is.
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
    home: bool = False  # the policy's own country, whose other zones keep other clocks (the US's, Mexico's)

    def line(self, policy_zone: str) -> str:
        shown = ", ".join(self.customers[:3]) + (", ..." if len(self.customers) > 3 else "")
        zones = ", ".join(self.zones[:3]) + (", ..." if len(self.zones) > 3 else "")
        count = "1 customer" if len(self.customers) == 1 else f"{len(self.customers)} customers"
        follow = "follows" if len(self.customers) == 1 else "follow"
        if self.home:
            return (f"{count} in {self.country} without a timezone ({shown}) {follow} the policy's {policy_zone} "
                    f"hours, but {self.country} also keeps other clocks ({zones}): give those who live on "
                    f"them a timezone column (docs/files.md)")
        return (f"{count} in {self.country} without a timezone ({shown}) {follow} the policy's {policy_zone} "
                f"hours, but {self.country} keeps other clocks ({zones}): give them a timezone column "
                f"(docs/files.md)")


def _tzdata(name: str):
    from importlib.resources import files

    return files("tzdata").joinpath("zoneinfo", name)


@lru_cache(maxsize=1)
def country_zones() -> dict[str, tuple[str, ...]]:
    """ISO 3166 country code -> its IANA zones, the most populous first."""
    table = _tzdata("zone.tab")
    if not table.is_file():  # its header says it is deprecated: zone1970.tab lists several codes a line
        table = _tzdata("zone1970.tab")
    found: dict[str, list[str]] = {}
    for line in table.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            codes, _coordinates, zone = line.split("\t")[:3]
            for code in codes.split(","):
                found.setdefault(code, []).append(zone)
    return {code: tuple(zones) for code, zones in found.items()}


@lru_cache(maxsize=1)
def _links() -> dict[str, str]:
    """Another name of a zone -> the zone (tzdata.zi's `L TARGET NAME` lines): `US/Eastern` is
    America/New_York."""
    links = {}
    for line in _tzdata("tzdata.zi").read_text(encoding="utf-8").splitlines():
        if line.startswith("L "):
            _, target, name = line.split()
            links[name] = target
    return links


def _own_countries(zone: str) -> frozenset[str]:
    """The countries the zone is in, under its name or the one it is another name of."""
    links = _links()
    while zone in links:
        zone = links[zone]
    return frozenset(code for code, zones in country_zones().items() if zone in zones)


@lru_cache(maxsize=512)
def _clock(zone: str, year: int) -> tuple[dt.timedelta | None, ...]:
    """The zone's UTC offsets in the middle of January and of July: its winter and summer clocks."""
    tz = ZoneInfo(zone)
    return tuple(dt.datetime(year, month, 15, 12, tzinfo=tz).utcoffset() for month in (1, 7))


def off_clock(customers, policy_zone: str, year: int) -> list[OffClock]:
    """By country, the customers without a time zone whose country keeps clocks other than the policy
    zone's in `year` (its main zone's, or most of its zones'; of the policy's own country, any of its
    zones': `home`); `customers` have `id`, `timezone` and `country` (an ISO code or None)."""
    zones = country_zones()
    unzoned: dict[str, list[str]] = {}
    for c in customers:
        if not c.timezone and c.country:
            unzoned.setdefault(c.country.upper(), []).append(c.id)
    own, home = _clock(policy_zone, year), _own_countries(policy_zone)
    found = []
    for country, ids in sorted(unzoned.items()):
        theirs = zones.get(country, ())
        if not theirs:
            continue
        differ = tuple(z for z in theirs if _clock(z, year) != own)
        if country in home:  # most are on the policy's clock, but a call at 08:00 New York is 05:00 in LA
            if differ:
                found.append(OffClock(country, tuple(sorted(ids)), differ, home=True))
        elif differ and (differ[0] == theirs[0] or 2 * len(differ) > len(theirs)):
            found.append(OffClock(country, tuple(sorted(ids)), differ))
    return found
