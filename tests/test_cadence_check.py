"""The compile-time cadence checks count contacts as the decision core and the guard send them
(docs/compliance.md, "Cadence checks"): for each weekday the due date can fall on, a step at a time
outside its channel's window goes out where the core defers it (the opening, that day or a later one),
and two steps deferred to one opening are two contacts. A cadence rule that due dates on any weekday
break is warned, with the numbers of the weekday that breaks it most and, unless all seven break it, the
weekdays that do; the property at the end checks that against simulations, one due date per weekday,
read by the independent laws of tests/laws.py."""

from __future__ import annotations

import datetime as dt
import re
import textwrap

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from collect.engine.compiler import compile_policy
from collect.engine.compliance import Guard
from collect.engine.compliance_checks import _weekdays
from collect.engine.runtime import Runtime
from collect.engine.state import SentContact
from coretools import customer, invoice, run
from laws import law_cl, law_co, law_us

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CAP = "calls-7-in-7-days"
# Saturday opens late: a call at 09:00 or 10:00 then goes out at 11:00
LATE_SATURDAY = '{ mon-fri: "08:00-19:00", sat: "11:00-19:00", sun: "08:00-19:00" }'


def compiled(tmp_path, windows: str, steps: list[tuple[str, str, str]], profile: str = "us-reg-f",
             chosen: dict | None = None, timezone: str = "America/Lima"):
    """A policy of one stage with `steps` (id, at, channel), its windows open on holidays."""
    body = "".join(f"      - {{ id: {i}, at: {at}, send: {channel}, template: m }}\n" for i, at, channel in steps)
    values = ", ".join(f"{k}: {v}" for k, v in (chosen or {}).items())
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(f"""
        policy: t
        timezone: {timezone}
        currency: USD
        compliance: [{profile}]
        compliance_settings: {{ {profile}: {{ {values} }} }}
        group_by: invoice
        catch_up: all
        windows:
          default: {windows}
          holidays: open
        templates:
          m: {{ voice: "call", sms: "sms", email: {{ subject: s, body: b }} }}
        stages:
          s:
            when: true
            steps:
        """) + body, encoding="utf-8")
    return compile_policy(path)


def cadence_rules(result) -> list[str]:
    """The rules of the cadence warnings (the hint says `<profile>: rule <id> (...)`)."""
    return [d.hint.split("rule ", 1)[1].split(" ", 1)[0] for d in result.diagnostics.items
            if d.code.startswith("compliance-cadence")]


def cadence_warnings(result) -> dict[str, str]:
    """Rule -> the message of its cadence warning."""
    return {d.hint.split("rule ", 1)[1].split(" ", 1)[0]: d.message for d in result.diagnostics.items
            if d.code.startswith("compliance-cadence")}


def named_weekdays(message: str) -> list[bool]:
    """Per weekday (Monday first): does the warning name it? A warning without "(for due dates on ...)"
    names them all. Read independently of the check: "Mon-Wed, Fri and Sun"."""
    if not message.endswith(")") or " (for due dates on " not in message:
        return [True] * 7
    text = message.rsplit(" (for due dates on ", 1)[1][:-1]
    names = [day.capitalize() for day in DAYS]
    out = [False] * 7
    for part in text.replace(" and ", ", ").split(", "):
        first, _, last = part.partition("-")
        assert not last or names.index(first) < names.index(last), text
        for k in range(names.index(first), names.index(last or first) + 1):
            out[k] = True
    assert text == _canonical(out), text  # consecutive days as one range, in order
    return out


def _canonical(days: list[bool]) -> str:
    names = [day.capitalize() for day in DAYS]
    runs = []
    for k in range(7):
        if days[k] and (k == 0 or not days[k - 1]):
            runs.append([k, k])
        elif days[k]:
            runs[-1][1] = k
    parts = [names[a] if a == b else f"{names[a]}-{names[b]}" for a, b in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def simulate_weekdays(result, monday: dt.date = dt.date(2026, 3, 2)) -> list[list[SentContact]]:
    """Per weekday of the due date (Monday first), the contacts the core sends under the profile's hours
    alone (a rule alone in its profile: until a contact the rule defers both runs are the same). One
    customer per due date, one invoice each."""
    rt = Runtime(result.plan)
    docs = result.plan.to_dict()["compliance_profiles"]
    for doc in docs:
        doc["rules"] = [rule for rule in doc["rules"] if rule["kind"] == "window"]
    rt.guard = Guard(docs)
    people = []
    for k in range(7):
        state = customer(f"c{k}", phone="+12125550123", email="a@b.co")
        invoice(state, f"F{k}", (monday + dt.timedelta(days=k)).isoformat())
        people.append(state)
    sim = run(rt, people, (monday - dt.timedelta(days=1)).isoformat(), 25)  # deferred a week: by day 16
    return [[SentContact(d.at, d.channel, d.invoice_ids) for d in sim.decisions
             if d.customer_id == state.customer.id and d.status == "sent"] for state in people]


def broken(result, law, chosen: dict | None = None, monday: dt.date = dt.date(2026, 3, 2),
           weekdays: list[list[SentContact]] | None = None) -> dict[str, list[bool]]:
    """Per rule, per weekday of the due date (Monday first): do the contacts the core sends under the
    profile's hours alone break the rule, as the law reads it? Then the cadence by itself makes the guard
    defer a contact for the rule. A conversation the day before the Monday (some rules apply only after
    one)."""
    talk = SentContact(dt.datetime.combine(monday - dt.timedelta(days=1), dt.time(), dt.timezone.utc), "voice")
    out: dict[str, list[bool]] = {}
    for k, contacts in enumerate(weekdays or simulate_weekdays(result, monday)):
        history, found = [], set()
        person = customer(f"c{k}", phone="+12125550123", email="a@b.co").customer
        for contact in contacts:
            found |= law(chosen or {}, person, contact.channel, contact.invoice_ids, contact.at, history, [talk])
            history.append(contact)
        for rule in found:
            out.setdefault(rule, [False] * 7)[k] = True
    return out


def measure(rule: dict, contacts: list[SentContact]) -> int | None:
    """How badly one weekday's simulated contacts break a cadence rule, in the warning's own units: the
    most contacts (cap) or channels (distinct channels) in one period, the least minutes or dates between
    two contacts in a row (spacing; None: fewer than two). Elapsed time on UTC instants, dates local."""
    mine = sorted((c for c in contacts if rule["channels"] == ["any"] or c.channel in rule["channels"]),
                  key=lambda c: c.at)
    if rule["kind"] == "min_spacing":
        if rule["spacing"] == "calendar":
            gaps = [(b.at.date() - a.at.date()).days for a, b in zip(mine, mine[1:])]
        else:
            gaps = [int((b.at - a.at).total_seconds()) // 60 for a, b in zip(mine, mine[1:])]
        return min(gaps, default=None)
    best = 0
    for i, first in enumerate(mine):
        if rule["period"] == "rolling":
            group = [c for c in mine[i:] if c.at - first.at < dt.timedelta(minutes=rule["period_minutes"])]
        elif rule["period"] == "calendar_week":  # Monday to Sunday
            group = [c for c in mine[i:] if c.at.date().isocalendar()[:2] == first.at.date().isocalendar()[:2]]
        else:  # calendar_day
            group = [c for c in mine[i:] if c.at.date() == first.at.date()]
        best = max(best, len(group) if rule["kind"] == "cap" else len({c.channel for c in group}))
    return best


def quoted(rule: dict, message: str) -> int:
    """The number a cadence warning quotes, in `measure`'s units."""
    if rule["kind"] == "cap":
        return int(re.search(r"can place (\d+) ", message).group(1))
    if rule["kind"] == "distinct_channels":
        return int(re.search(r" use (\d+) channels ", message).group(1))
    if rule["spacing"] == "calendar":
        return int(re.search(r" go out (\d+) day\(s\) apart;", message).group(1))
    hours, minutes = re.search(r" go out (\d+) hours(?: (\d+) minutes)? apart;", message).groups()
    return int(hours) * 60 + int(minutes or 0)


def daily_calls(times: list[str]) -> list[tuple[str, str, str]]:
    return [(f"c{d}", f"due+{d}d {time}", "voice") for d, time in enumerate(times)]


def test_a_cadence_some_due_dates_make_too_dense_warns_naming_their_weekdays(tmp_path):
    """docs/compliance.md's case: calls at due+0d..due+6d 10:00 and due+7d 09:00 are 8 in 6 days 23
    hours, except when the due date is a Saturday: the first and the last then wait for 11:00 and are a
    week apart. The guard will hold a call of most invoices: a warning, naming the weekdays."""
    result = compiled(tmp_path, LATE_SATURDAY, daily_calls(["10:00"] * 7 + ["09:00"]))
    (warning,) = [d for d in result.diagnostics.items if d.code.startswith("compliance-cadence")]
    assert warning.code == "compliance-cadence-exceeds-cap"
    assert warning.message == ("stage 's': steps c0..c7 can place 8 calls in 7 days; us-reg-f allows 7, the guard "
                               "will defer 1 (for due dates on Mon-Fri and Sun)")
    assert broken(result, law_us)[CAP] == [True] * 5 + [False, True]


def test_a_cadence_every_due_date_makes_too_dense_names_no_weekday(tmp_path):
    result = compiled(tmp_path, LATE_SATURDAY, daily_calls(["12:00"] * 7 + ["11:00"]))
    (warning,) = [d for d in result.diagnostics.items if d.code == "compliance-cadence-exceeds-cap"]
    assert warning.message == ("stage 's': steps c0..c7 can place 8 calls in 7 days; us-reg-f allows 7, the guard "
                               "will defer 1")  # no weekdays named: due dates on every one break the rule
    assert broken(result, law_us)[CAP] == [True] * 7


def test_a_cadence_warning_quotes_the_weekday_that_breaks_the_rule_most(tmp_path):
    """SMS at due+2d, 4d, 6d and 8d 10:00 are 4 in 6 days, except for a Friday due date: the first then
    waits from Sunday to Monday 08:00 (cl-sernac's hours and this window are closed at the weekend) and
    the last from Saturday to the Monday after, a week later, 3 in 7 days. The warning quotes 4, and
    names no weekday: due dates on all seven break the rule."""
    steps = [(f"s{d}", f"due+{d}d 10:00", "sms") for d in (2, 4, 6, 8)]
    result = compiled(tmp_path, '{ mon-fri: "08:00-19:00" }', steps, "cl-sernac", timezone="America/Santiago")
    message = cadence_warnings(result)["two-messages-a-week"]
    assert message == ("stage 's': steps s2..s8 can place 4 contacts by email/sms/whatsapp/letter in 7 days; "
                       "cl-sernac allows 2, the guard will defer 2")
    weekdays = simulate_weekdays(result)
    rule = next(r for r in result.plan.to_dict()["compliance_profiles"][0]["rules"] if r["id"] == "two-messages-a-week")
    assert [measure(rule, contacts) for contacts in weekdays] == [4, 4, 4, 4, 3, 4, 4]
    assert broken(result, law_cl, weekdays=weekdays)["two-messages-a-week"] == [True] * 7


def test_the_weekdays_are_named_in_order_with_runs_as_ranges():
    assert _weekdays([6, 0, 1, 2, 3, 4]) == "Mon-Fri and Sun"
    assert _weekdays([5]) == "Sat"
    assert _weekdays([0, 2, 4]) == "Mon, Wed and Fri"
    assert _weekdays([0, 1, 3, 4, 5, 6]) == "Mon-Tue and Thu-Sun"
    assert _weekdays([5, 6]) == "Sat-Sun"
    assert all(_canonical([k in days for k in range(7)]) == _weekdays(days)
               for days in ([0], [1, 2], [0, 3, 6], [0, 1, 2, 3, 4, 5], [1, 3, 4, 5]))


def test_a_step_deferred_to_the_next_day_counts_on_that_day(tmp_path):
    """An SMS at 20:00, after the window closes, goes out at the next day's opening, on the date of the
    next SMS: two contacts on one date (Ley 2300's one a day), whatever the due date's weekday."""
    result = compiled(tmp_path, '{ mon-sun: "08:00-19:00" }',
                      [("late", "due+1d 20:00", "sms"), ("next", "due+2d 10:00", "sms")], profile="co-ley-2300")
    assert cadence_rules(result) == ["one-contact-a-day"]
    assert cadence_warnings(result)["one-contact-a-day"].endswith("the guard will defer 1")  # every weekday


def test_a_calendar_week_runs_from_monday_to_sunday(tmp_path):
    """cl-sernac's one call a week: calls at due+0d and due+3d 10:00 are 3 days apart, within a rolling
    week whatever the due date. In one Monday-to-Sunday week for a due date from Monday to Wednesday, and
    on a Sunday, when cl-sernac's hours are closed: the first call waits for Monday. On a Thursday, the
    second call is the one that waits for Monday, the next week."""
    calls = [("c0", "due+0d 10:00", "voice"), ("c3", "due+3d 10:00", "voice")]
    for week, named in (("rolling", ""), ("calendar", " (for due dates on Mon-Wed and Sun)")):
        result = compiled(tmp_path, LATE_SATURDAY, calls, "cl-sernac", {"week": week}, "America/Santiago")
        assert cadence_warnings(result)["one-call-a-week"] == (
            "stage 's': steps c0..c3 can place 2 calls in " + ("7 days" if week == "rolling" else "one calendar week")
            + "; cl-sernac allows 1, the guard will defer 1" + named)
        found = broken(result, law_cl, {"week": week})["one-call-a-week"]
        assert found == [True] * 3 + [week == "rolling"] * 3 + [True]


# -- the check against the simulation ---------------------------------------------------------------

# profile, settings, law, zone, a Monday with no public holiday of the country in the next four weeks
# (the check cannot know holidays), channels.
PROFILES = [
    ("us-reg-f", {}, law_us, "America/Lima", dt.date(2026, 3, 2), ["voice"]),
    ("co-ley-2300", {}, law_co, "America/Bogota", dt.date(2026, 2, 2), ["sms", "email", "voice"]),
    ("co-ley-2300", {"week": "calendar"}, law_co, "America/Bogota", dt.date(2026, 2, 2), ["sms", "email", "voice"]),
    ("cl-sernac", {}, law_cl, "America/Santiago", dt.date(2026, 3, 2), ["sms", "email", "voice"]),
    ("cl-sernac", {"week": "calendar"}, law_cl, "America/Santiago", dt.date(2026, 3, 2), ["sms", "email", "voice"]),
    ("cl-sernac", {"spacing": "48h"}, law_cl, "America/Santiago", dt.date(2026, 3, 2), ["sms", "email"]),
    ("cl-sernac", {"spacing": "2d"}, law_cl, "America/Santiago", dt.date(2026, 3, 2), ["sms", "email"]),
]


@st.composite
def cadences(draw, channels: list[str]):
    """Windows that may open late, close early or not at all on some days, and steps at whole hours
    (inside them or not, some at the window's opening) on the first days after the due date."""
    windows = {}
    for day in DAYS:
        if draw(st.integers(0, 3)):  # a quarter of the days closed
            start = draw(st.integers(5, 13))
            windows[day] = f"{start:02d}:00-{draw(st.integers(start + 1, 23)):02d}:00"
    times = draw(st.lists(st.tuples(st.integers(0, 9), st.sampled_from([None, *range(24)])),
                          min_size=2, max_size=12, unique=True))  # one step per trigger: no alternatives
    steps = [(f"v{i}", f"due+{d}d" + (f" {h:02d}:00" if h is not None else ""), draw(st.sampled_from(channels)))
             for i, (d, h) in enumerate(sorted(times, key=lambda t: (t[0], -1 if t[1] is None else t[1])))]
    return "{ " + ", ".join(f'{d}: "{h}"' for d, h in windows.items()) + " }", steps


@pytest.mark.parametrize("profile, chosen, law, zone, monday, channels", PROFILES,
                         ids=[f"{p[0]}-{'-'.join(p[1].values()) or 'defaults'}" for p in PROFILES])
def test_a_cadence_warning_names_exactly_the_due_dates_that_break_the_rule(tmp_path_factory, profile, chosen,
                                                                          law, zone, monday, channels):
    """The check warns of a cadence rule exactly when, for a due date on some weekday, the contacts the
    core sends break it; the warning names exactly those weekdays (none when all seven do) and quotes
    the numbers of the one that breaks it most: the most contacts or channels in a period, the closest
    two contacts."""

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cadences(channels))
    def check(case):
        windows, steps = case
        result = compiled(tmp_path_factory.mktemp("p"), windows, steps, profile, chosen, zone)
        assume(result.plan is not None)  # no day on which the window meets the profile's hours
        assert_warned_as_simulated(result, law, chosen, monday, (windows, steps))

    check()


def assert_warned_as_simulated(result, law, chosen, monday: dt.date, case) -> None:
    """Each cadence rule is warned exactly when, for a due date on some weekday, the contacts the core
    sends break it (as `law` reads the notes); the warning names those weekdays and quotes the worst
    numbers. `case`: what generated the policy, for the failure message."""
    weekdays = simulate_weekdays(result, monday)
    warned, found = cadence_warnings(result), broken(result, law, chosen, monday, weekdays)
    for doc in result.plan.to_dict()["compliance_profiles"]:
        for rule in doc["rules"]:
            if rule["kind"] not in ("cap", "distinct_channels", "min_spacing"):
                continue
            days = found.get(rule["id"], [False] * 7)
            why = (rule["id"], *case, days, warned.get(rule["id"]))
            assert (rule["id"] in warned) == any(days), why
            if rule["id"] in warned:
                assert named_weekdays(warned[rule["id"]]) == days, why
                numbers = [n for n in (measure(rule, contacts) for contacts in weekdays) if n is not None]
                worst = min(numbers) if rule["kind"] == "min_spacing" else max(numbers)
                assert quoted(rule, warned[rule["id"]]) == worst, (*why, numbers)
