"""Whether the `holidays` package knows a calendar's country and subdivision.

The run asks `holidays.country_holidays(country, subdiv=...)` for the public holidays, and that raises
for a code it does not know; so the compiler asks it first, and says what would work instead. The list
of every country (slow: it loads them all) is only read to explain a mistake.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .diagnostics import suggest

_ALPHA2 = re.compile(r"[A-Z]{2}")
MAX_LISTED = 60  # subdivisions named in a message; Italy has over a hundred


def _table(country: str, subdivision: str | None = None):
    """The package's holidays for a country, or None when it does not know it as a country (a stock
    exchange such as LSE has a calendar too, but no country's rules, compliance included)."""
    import holidays

    try:
        table = holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:  # what the package raises for a country or subdivision it does not have
        return None
    except (TypeError, ValueError):  # a name of the package that is no calendar at all (JAN is a month)
        return None
    return table if getattr(table, "country", None) else None


@lru_cache(maxsize=256)
def country_problem(country: str) -> str | None:
    """Why `country` cannot be a calendar's country, or None when it can."""
    table = _table(country) if _ALPHA2.fullmatch(country) else None
    if table is not None:
        return None
    upper = country.strip().upper()
    known = _table(upper) if re.fullmatch(r"[A-Z]{2,3}", upper) else None
    if known is not None and upper != known.country:  # PER: holidays knows it, compliance and portfolios do not
        return f"'{country}' is not a two-letter country code: write the ISO 3166 code {known.country}"
    if known is not None:
        return f"'{country}' is not a country code: write {upper} (codes are in capitals)"
    import holidays

    hint = suggest(upper, [c for c in holidays.list_supported_countries() if _ALPHA2.fullmatch(c)])
    return (f"'{country}' is not a country the holidays package knows: write its two-letter ISO 3166 code "
            "(PE, US, CO ...)" + (f"; {hint}" if hint else ""))


@lru_cache(maxsize=256)
def subdivision_problem(country: str, subdivision: str) -> str | None:
    """Why `subdivision` cannot be one of `country` (a country the package knows), or None when it can."""
    if _table(country, subdivision) is not None:
        return None
    codes = list(_table(country).subdivisions)
    if not codes:
        return (f"the holidays package has no subdivisions for {country}: leave subdivision out "
                "(regional closing days can go in extra_holidays)")
    upper = subdivision.strip().upper()
    if upper in codes:
        return f"'{subdivision}' is not a subdivision of {country}: write {upper} (codes are in capitals)"
    hint = suggest(subdivision, codes)
    listed = ", ".join(codes[:MAX_LISTED]) + (f" ... ({len(codes)} in all)" if len(codes) > MAX_LISTED else "")
    return (f"'{subdivision}' is not a subdivision of {country} in the holidays package"
            + (f" ({hint})" if hint else "") + f"; it has {listed}")


def lone_subdivision_problem(country, subdivision) -> str | None:
    """Why a subdivision written without a country is an error (the package reads a subdivision only within
    its country: the run would take no public holidays at all), or None when there is a country. A value that
    is no text is reported by its type instead."""
    if not isinstance(subdivision, str) or country not in (None, ""):  # `country: ""` takes no holidays either
        return None
    import holidays

    code = subdivision.strip().upper()
    countries = [c for c, codes in holidays.list_supported_countries().items()
                 if _ALPHA2.fullmatch(c) and code in codes]
    return (f"subdivision '{subdivision}' needs the calendar's country too, its ISO 3166 code "
            "(without one no public holidays are taken)"
            + (f"; {code} is a subdivision of {', '.join(countries)} in the holidays package" if countries else ""))
