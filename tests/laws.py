"""An independent reading of each law of shared/COMPLIANCE-NOTES.md, written from the notes and not from
the profile files: which rules a contact would break. The compliance tests check the guard, and every
simulated contact, against it. Rolling periods are elapsed time (docs/compliance.md: a rolling week is
168 hours), measured on UTC instants: two times of one zone subtract on the wall clock, an hour off
across a daylight-saving change."""

from __future__ import annotations

import datetime as dt

import holidays


def _elapsed(a: dt.datetime, b: dt.datetime) -> dt.timedelta:
    return b.astimezone(dt.timezone.utc) - a.astimezone(dt.timezone.utc)


def _minute(at: dt.datetime) -> int:
    return at.hour * 60 + at.minute


def _holiday(country: str, date: dt.date) -> bool:
    return date in holidays.country_holidays(country, years=date.year)


def _same_week(a: dt.date, b: dt.date, week: str, at_a, at_b) -> bool:
    if week == "calendar":
        return a.isocalendar()[:2] == b.isocalendar()[:2]
    return _elapsed(at_a, at_b) < dt.timedelta(days=7)


def law_us(chosen, cust, channel, ids, now, sent, talks) -> set[str]:
    broken = set()
    if not 8 * 60 <= _minute(now) < 21 * 60:
        broken.add("hours")
    if channel != "voice":
        return broken
    debts = set(ids) or {i for s in sent for i in s.invoice_ids} | {"(unnamed)"}
    for debt in debts:
        calls = [s.at for s in sent if s.channel == "voice" and (not s.invoice_ids or debt in s.invoice_ids)] + [now]
        for start in calls:  # every 7-day stretch that begins at a call and holds the new one
            if start <= now and _elapsed(start, now) < dt.timedelta(days=7):
                if sum(start <= at <= now for at in calls) > 7:
                    broken.add("calls-7-in-7-days")
    for talk in talks:
        if talk.channel not in ("voice", "agent"):  # a telephone conversation (an agent's call too)
            continue
        day_number = (now.date() - talk.at.astimezone(now.tzinfo).date()).days + 1
        overlaps = not ids or not talk.invoice_ids or set(ids) & set(talk.invoice_ids)
        if overlaps and 1 <= day_number <= 7:
            broken.add("no-call-after-conversation")
    return broken


def law_co(chosen, cust, channel, ids, now, sent, talks) -> set[str]:
    broken = set()
    if cust.consents is None or channel not in cust.consents:
        broken.add("authorised-channels")
    hours = {5: (480, 900), 6: None}.get(now.weekday(), (420, 1140))
    if hours is None or _holiday("CO", now.date()) or not hours[0] <= _minute(now) < hours[1]:
        broken.add("hours")
    if talks:
        local = [(s.at.astimezone(now.tzinfo), s.channel) for s in sent]
        if any(at.date() == now.date() for at, _ in local):
            broken.add("one-contact-a-day")
        week = {ch for at, ch in local if _same_week(at.date(), now.date(), chosen.get("week", "rolling"), at, now)}
        if len(week | {channel}) > 1:
            broken.add("one-channel-a-week")
    return broken


def law_mx(chosen, cust, channel, ids, now, sent, talks) -> set[str]:
    return set() if 7 * 60 <= _minute(now) < 22 * 60 else {"hours"}


def law_pe(chosen, cust, channel, ids, now, sent, talks) -> set[str]:
    ok = now.weekday() < 5 and not _holiday("PE", now.date()) and 7 * 60 <= _minute(now) < 20 * 60
    return set() if ok else {"hours"}


def law_cl(chosen, cust, channel, ids, now, sent, talks) -> set[str]:
    broken = set()
    if (cust.legal_status or "").lower() in ("sued", "insolvent"):
        broken.add("sued-or-insolvent")
    if now.weekday() == 6 or _holiday("CL", now.date()) or not 8 * 60 <= _minute(now) < 20 * 60:
        broken.add("hours")
    week = chosen.get("week", "rolling")
    local = [(s.at.astimezone(now.tzinfo), s.channel) for s in sent]
    in_week = [ch for at, ch in local if _same_week(at.date(), now.date(), week, at, now)]
    if channel == "voice" and in_week.count("voice") + 1 > 1:
        broken.add("one-call-a-week")
    if channel != "voice":
        if sum(ch != "voice" for ch in in_week) + 1 > 2:
            broken.add("two-messages-a-week")
        messages = [at for at, ch in local if ch != "voice"]
        if messages:
            last, spacing = max(messages), chosen.get("spacing", "2-clear-days")
            days = (now.date() - last.date()).days
            if (spacing == "2-clear-days" and days < 3) or (spacing == "2d" and days < 2) or \
                    (spacing == "48h" and _elapsed(last, now) < dt.timedelta(hours=48)):
                broken.add("messages-two-days-apart")
    return broken


LAWS = [
    ("us-reg-f", {}, law_us, ["America/New_York", "America/Los_Angeles", "America/Anchorage"]),
    ("co-ley-2300", {"week": "rolling"}, law_co, ["America/Bogota"]),
    ("co-ley-2300", {"week": "calendar"}, law_co, ["America/Bogota"]),
    ("mx-condusef", {}, law_mx, ["America/Tijuana", "America/Mexico_City", "America/Cancun"]),
    ("pe-indecopi", {}, law_pe, ["America/Lima"]),
    ("cl-sernac", {}, law_cl, ["America/Santiago", "Pacific/Easter"]),
    ("cl-sernac", {"week": "calendar", "spacing": "2d"}, law_cl, ["America/Santiago"]),
    ("cl-sernac", {"spacing": "48h"}, law_cl, ["America/Santiago"]),
]
