"""The compliance-profile library (issue 6): profile files, the run-time guard and the static checks.

Scenarios 1-8 of shared/COMPLIANCE-NOTES.md are tested on the guard; hypothesis compares the guard with
an independent brute-force reading of each law (written from the notes, not from the profile files).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.compliance import (Block, Guard, ProfileError, elapsed_after, load_profile, profile_names,
                                       resolve)
from collect.engine.compliance_checks import check_plan
from collect.engine.state import CustomerInfo, SentContact
from coretools import dst_changes
from laws import LAWS

UTC = dt.timezone.utc
ALL = frozenset({"email", "sms", "whatsapp", "voice", "letter"})
NY, BOGOTA, LIMA = ZoneInfo("America/New_York"), ZoneInfo("America/Bogota"), ZoneInfo("America/Lima")
SANTIAGO, TIJUANA, MEXICO = ZoneInfo("America/Santiago"), ZoneInfo("America/Tijuana"), ZoneInfo("America/Mexico_City")
# 2026-11-23 is a Monday; 2026-11-16 is a Colombian holiday moved to Monday (Independence of Cartagena)


def guard(name: str, **chosen) -> Guard:
    return Guard(resolve([name], {name: chosen} if chosen else None))


def t(tz, day: int, hour: int = 12, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=tz)


def contact(at: dt.datetime, channel: str, *ids: str) -> SentContact:
    return SentContact(at, channel, tuple(ids))


def customer(country: str, consents=ALL, legal_status=None) -> CustomerInfo:
    return CustomerInfo("c1", country=country, consents=consents, legal_status=legal_status)


def rule_of(block: Block | None) -> str | None:
    return block.rule if block else None


# -- profile files ---------------------------------------------------------------------------------


def test_every_profile_loads_with_sources_and_limits():
    assert profile_names() == ["cl-sernac", "co-ley-2300", "mx-condusef", "pe-indecopi", "us-reg-f"]
    for name in profile_names():
        doc = load_profile(name)
        assert doc["profile"] == name and len(doc["country"]) == 2
        assert dt.date.fromisoformat(doc["verified"])
        assert doc["not_covered"] and all(s["url"].startswith("http") and s["says"] for s in doc["sources"])


def test_resolved_docs_are_json_and_carry_settings():
    docs = resolve("auto")
    assert json.loads(json.dumps(docs)) == docs
    assert [d["profile"] for d in docs] == profile_names()
    co = next(d for d in docs if d["profile"] == "co-ley-2300")
    assert co["settings"] == {"week": "rolling"}
    week = next(r for r in co["rules"] if r["id"] == "one-channel-a-week")
    assert (week["period"], week["period_minutes"]) == ("rolling", 7 * 1440)
    calendar = resolve(["co-ley-2300"], {"co-ley-2300": {"week": "calendar"}})[0]
    assert next(r for r in calendar["rules"] if r["id"] == "one-channel-a-week")["period"] == "calendar_week"
    us = resolve(["us-reg-f"])[0]
    assert next(r for r in us["rules"] if r["id"] == "hours")["days"]["sun"] == [[480, 1260]]


@pytest.mark.parametrize("selection, chosen, message", [
    (["us-reg-f", "xx-law"], None, "unknown compliance profile 'xx-law'"),
    (["us-reg-f", "us-reg-f"], None, "listed twice"),
    (["co-ley-2300"], {"co-ley-2300": {"wek": "rolling"}}, "unknown setting 'wek'"),
    (["co-ley-2300"], {"co-ley-2300": {"week": "fortnight"}}, "co-ley-2300.week: 'fortnight' is not allowed"),
    (["co-ley-2300"], {"cl-sernac": {"spacing": "2d"}}, "profile 'cl-sernac' is not selected"),
    (["us-reg-f"], {"us-reg-f": {"week": "rolling"}}, "us-reg-f: unknown setting 'week'"),
])
def test_bad_selections_and_settings_name_profile_and_setting(selection, chosen, message):
    with pytest.raises(ProfileError, match=message):
        resolve(selection, chosen)


def test_every_allowed_setting_value_resolves():
    for spacing in ("2d", "48h", "2-clear-days"):
        for week in ("rolling", "calendar"):
            doc = resolve(["cl-sernac"], {"cl-sernac": {"spacing": spacing, "week": week}})[0]
            assert doc["settings"] == {"spacing": spacing, "week": week}


def minimal_profile(name: str = "xx-test") -> dict:
    return {"profile": name, "title": "Test law", "country": "XX", "verified": "2026-11-24",
            "sources": [{"id": "law", "title": "The law", "url": "https://example.org/law", "says": "Rules."}],
            "not_covered": ["everything else"],
            "settings": {"week": {"default": "rolling", "values": {"rolling": "rolling 7d", "calendar": "calendar_week"}}},
            "rules": [{"id": "hours", "kind": "window", "days": {"mon-fri": "08:00-18:00"}, "source": "law"},
                      {"id": "calls", "kind": "cap", "channels": ["voice"], "max": 2, "period": "$week", "source": "law"}]}


def write(tmp_path, doc: dict, name: str = "xx-test"):
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def test_a_valid_profile_in_another_folder_loads(tmp_path):
    write(tmp_path, minimal_profile())
    assert load_profile("xx-test", tmp_path)["rules"][1]["period"] == "$week"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(extra=1), "profile: unknown key 'extra'"),
    (lambda d: d.pop("sources"), "profile: missing key 'sources'"),
    (lambda d: d.update(profile="other"), "must match the file name"),
    (lambda d: d.update(country="Colombia"), "not an ISO 3166 alpha-2"),
    (lambda d: d.update(verified="late 2026"), "verified: 'late 2026' is not a date"),
    (lambda d: d["rules"][1].update(maxx=3), r"rules\[1\] \(calls\): unknown key 'maxx'"),
    (lambda d: d["rules"][1].update(kind="quota"), r"rules\[1\] \(calls\): unknown rule kind 'quota'"),
    (lambda d: d["rules"][1].update(period="7d"), "period: '7d' is not rolling <duration>"),
    (lambda d: d["rules"][1].update(period="$month"), r"xx-test.yaml: rules\[1\] \(calls\): period: '\$month' names no"),
    (lambda d: d["rules"][1].update(channels=["fax"]), "unknown channel 'fax'"),
    (lambda d: d["rules"].__setitem__(1, {"id": "calls", "kind": "after_conversation", "days": 7, "source": "law",
                                          "conversations": ["fax"]}),
     r"conversations: give any or a list of channels among email, sms, whatsapp, voice, letter, agent"),
    (lambda d: d["rules"][1].update(max=0), "max: '0' must be a whole number of at least 1"),
    (lambda d: d["rules"][1].update(id="hours"), "rule id 'hours' is used twice"),
    (lambda d: d["rules"][1].update(source="other-law"), "source 'other-law' is not one of the profile's sources"),
    (lambda d: d["rules"][0].update(days={"mon-fry": "08:00-18:00"}), "'fry' is not a day"),
    (lambda d: d["rules"][0].update(days={"mon": "18:00-08:00"}), "ends before it starts"),
    (lambda d: d["rules"][0].pop("days"), r"rules\[0\] \(hours\): missing key 'days'"),
    (lambda d: d["settings"]["week"]["values"].update(fortnight="rolling fortnight"), "not a duration"),
    (lambda d: d["settings"]["week"].update(default="monthly"), "default 'monthly' is not one of its values"),
])
def test_profile_errors_name_the_file_and_the_key(tmp_path, change, message):
    doc = minimal_profile()
    change(doc)
    write(tmp_path, doc)
    with pytest.raises(ProfileError, match=message) as info:
        load_profile("xx-test", tmp_path)
    assert "xx-test.yaml" in str(info.value)


def test_unknown_profile_file_lists_the_known_ones(tmp_path):
    write(tmp_path, minimal_profile())
    with pytest.raises(ProfileError, match="known profiles: xx-test"):
        load_profile("yy-test", tmp_path)


# -- 1. Reg F: 7 calls in 7 days, per debt -----------------------------------------------------------


def test_reg_f_seventh_call_passes_eighth_in_rolling_week_waits_for_the_oldest():
    g, c = guard("us-reg-f"), customer("US")
    calls = [contact(t(NY, 16 + k, 10), "voice", "A") for k in range(7)]
    assert g.check(c, "voice", ("A",), t(NY, 22, 15), calls[:6], []) is None
    block = g.check(c, "voice", ("A",), t(NY, 22, 15), calls, [])
    assert block == Block("us-reg-f", "calls-7-in-7-days", t(NY, 23, 10))
    assert block.reason == "compliance:us-reg-f:calls-7-in-7-days"
    assert g.check(c, "voice", ("A",), t(NY, 23, 10), calls, []) is None
    assert g.check(c, "sms", ("A",), t(NY, 22, 15), calls, []) is None  # no numeric cap on texts


def test_a_rolling_week_is_168_hours_across_a_daylight_saving_change():
    """Seven calls on Saturday 2026-03-07 08:00 EST; clocks go forward on the 8th. The eighth call waited
    until 08:00 EDT on the 14th, 167 hours later, and was still held then: the guard counts elapsed time
    (docs/compliance.md) but moved the end of the week on the wall clock. Found by the property below."""
    g, c = guard("us-reg-f"), customer("US")
    saturday = dt.datetime(2026, 3, 7, 8, tzinfo=NY)
    calls = [contact(saturday, "voice", "A")] * 7
    block = g.check(c, "voice", ("A",), saturday, calls, [])
    assert block == Block("us-reg-f", "calls-7-in-7-days", dt.datetime(2026, 3, 14, 9, tzinfo=NY))
    assert block.until - saturday.astimezone(UTC) == dt.timedelta(hours=168) and block.until.tzinfo is NY
    assert rule_of(g.check(c, "voice", ("A",), dt.datetime(2026, 3, 14, 8, 59, tzinfo=NY), calls, [])) == \
        "calls-7-in-7-days"
    assert g.check(c, "voice", ("A",), block.until, calls, []) is None


@pytest.mark.parametrize("at", [dt.datetime(2026, 9, 5, 10, tzinfo=SANTIAGO),  # clocks forward on the 6th
                                dt.datetime(2026, 4, 3, 10, tzinfo=SANTIAGO),  # and back on the 5th
                                dt.datetime(2026, 4, 3, 13, tzinfo=UTC)])
def test_rolling_periods_and_spacings_end_after_elapsed_time_in_the_zone_of_the_contact(at):
    for length in (dt.timedelta(hours=48), dt.timedelta(days=7)):
        end = elapsed_after(at, length)
        assert end.astimezone(UTC) - at.astimezone(UTC) == length and end.tzinfo is at.tzinfo


def test_reg_f_counts_each_debt_apart():
    g, c = guard("us-reg-f"), customer("US")
    calls = [contact(t(NY, 20, 9 + k), "voice", "A") for k in range(7)]
    assert g.check(c, "voice", ("B",), t(NY, 21), calls, []) is None
    assert rule_of(g.check(c, "voice", ("A", "B"), t(NY, 21), calls, [])) == "calls-7-in-7-days"
    assert rule_of(g.check(c, "voice", (), t(NY, 21), calls, [])) == "calls-7-in-7-days"  # about all debts
    about_all = [contact(t(NY, 20, 9 + k), "voice") for k in range(7)]
    assert rule_of(g.check(c, "voice", ("B",), t(NY, 21), about_all, [])) == "calls-7-in-7-days"
    mixed = calls[:4] + [contact(t(NY, 20, 14 + k), "voice", "B") for k in range(4)]
    assert g.check(c, "voice", ("A",), t(NY, 21), mixed, []) is None
    grouped = [contact(t(NY, 20, 9 + k), "voice", "A", "B") for k in range(7)]
    assert rule_of(g.check(c, "voice", ("B",), t(NY, 21), grouped, [])) == "calls-7-in-7-days"


# -- 2. Reg F: no call for 7 days after a conversation -----------------------------------------------


def test_reg_f_conversation_on_monday_blocks_calls_until_next_monday():
    g, c = guard("us-reg-f"), customer("US")
    talk = [contact(t(NY, 23, 11), "voice", "A")]
    block = g.check(c, "voice", ("A",), t(NY, 24, 10), [], talk)
    assert block == Block("us-reg-f", "no-call-after-conversation", t(NY, 30, 0))
    assert rule_of(g.check(c, "voice", ("A",), t(NY, 29, 20), [], talk)) == "no-call-after-conversation"
    assert g.check(c, "voice", ("A",), t(NY, 30, 8), [], talk) is None
    assert g.check(c, "sms", ("A",), t(NY, 24, 10), [], talk) is None
    assert g.check(c, "voice", ("B",), t(NY, 24, 10), [], talk) is None
    about_both = [contact(t(NY, 23, 11), "voice", "A", "B")]
    assert rule_of(g.check(c, "voice", ("B",), t(NY, 24, 10), [], about_both)) == "no-call-after-conversation"
    assert rule_of(g.check(c, "voice", ("C",), t(NY, 24, 10), [], [contact(t(NY, 23, 11), "voice")])) is not None
    assert g.check(c, "voice", ("A",), t(NY, 23, 10), [], talk) is None  # the conversation is still to come


def test_reg_f_only_a_telephone_conversation_blocks_calls():
    """12 CFR 1006.14(b)(2)(i)(B): 'after having had a telephone conversation'. A chat, a text or an email
    exchange starts no lock; an agent's call (a conversation reported on `agent`) does."""
    g, c = guard("us-reg-f"), customer("US")
    for channel in ("whatsapp", "sms", "email", "letter"):
        assert g.check(c, "voice", ("A",), t(NY, 24, 10), [], [contact(t(NY, 23, 11), channel, "A")]) is None
    agent = [contact(t(NY, 23, 11), "agent", "A")]
    assert g.check(c, "voice", ("A",), t(NY, 24, 10), [], agent) == Block("us-reg-f", "no-call-after-conversation",
                                                                            t(NY, 30, 0))


# -- 3. Reg F hours ----------------------------------------------------------------------------------


def test_reg_f_hours_in_local_time_on_every_channel():
    g, c = guard("us-reg-f"), customer("US")
    assert g.check(c, "voice", ("A",), t(NY, 24, 20, 59), [], []) is None
    assert g.check(c, "email", ("A",), t(NY, 24, 21, 0), [], []) == Block("us-reg-f", "hours", t(NY, 25, 8))
    assert g.check(c, "sms", ("A",), t(NY, 24, 7, 59), [], []) == Block("us-reg-f", "hours", t(NY, 24, 8))
    assert g.check(c, "voice", (), t(NY, 29, 10), [], []) is None  # Sunday: no day ban in Reg F
    la = t(ZoneInfo("America/Los_Angeles"), 24, 20, 30)  # 23:30 in New York, but the consumer's clock counts
    assert g.check(c, "voice", (), la, [], []) is None
    assert g.check(c, "webhook", (), t(NY, 24, 3), [], []) is None  # not a contact with the debtor


# -- 4. Colombia hours and holidays ------------------------------------------------------------------


def test_colombia_saturday_afternoon_sunday_and_monday_holiday():
    g, c = guard("co-ley-2300"), customer("CO")
    assert g.check(c, "sms", (), t(BOGOTA, 28, 14, 59), [], []) is None
    assert g.check(c, "sms", (), t(BOGOTA, 28, 15, 0), [], []) == Block("co-ley-2300", "hours", t(BOGOTA, 30, 7))
    assert rule_of(g.check(c, "sms", (), t(BOGOTA, 29, 10), [], [])) == "hours"
    assert dt.date(2026, 11, 16) in holidays.country_holidays("CO")  # moved to Monday
    assert g.check(c, "email", (), t(BOGOTA, 16, 10), [], []) == Block("co-ley-2300", "hours", t(BOGOTA, 17, 7))
    assert g.check(c, "voice", (), t(BOGOTA, 24, 7, 0), [], []) is None


def test_colombia_needs_consent_for_the_channel():
    g = guard("co-ley-2300")
    at = t(BOGOTA, 24, 10)
    assert g.check(customer("CO", consents=None), "sms", (), at, [], []) == Block("co-ley-2300", "authorised-channels", None)
    assert rule_of(g.check(customer("CO", consents=frozenset({"email"})), "sms", (), at, [], [])) == "authorised-channels"
    assert g.check(customer("CO", consents=frozenset({"sms"})), "sms", (), at, [], []) is None
    # a block that never lifts by itself wins over one that lifts at a time
    assert g.check(customer("CO", consents=None), "sms", (), t(BOGOTA, 29, 10), [], []).until is None


# -- 5. Colombia after direct contact: one channel a week, one contact a day ---------------------------


@pytest.mark.parametrize("week, until", [("calendar", t(BOGOTA, 30, 0)), ("rolling", t(BOGOTA, 1, 10, month=12))])
def test_colombia_one_channel_a_week_after_a_conversation(week, until):
    g, c = guard("co-ley-2300", week=week), customer("CO")
    talk = [contact(t(BOGOTA, 20, 11), "voice")]  # the customer called in on Friday
    sent = [contact(t(BOGOTA, 24, 10), "whatsapp")]  # Tuesday
    assert g.check(c, "whatsapp", (), t(BOGOTA, 24, 10), [], talk) is None
    assert g.check(c, "sms", (), t(BOGOTA, 26, 10), sent, talk) == Block("co-ley-2300", "one-channel-a-week", until)
    assert g.check(c, "whatsapp", (), t(BOGOTA, 26, 10), sent, talk) is None
    assert rule_of(g.check(c, "whatsapp", (), t(BOGOTA, 24, 15), sent, talk)) == "one-contact-a-day"
    assert g.check(c, "sms", (), t(BOGOTA, 26, 10), sent, []) is None  # no direct contact yet: no such limits
    next_monday = g.check(c, "sms", (), t(BOGOTA, 30, 10), sent, talk)
    assert rule_of(next_monday) == (None if week == "calendar" else "one-channel-a-week")


def test_colombia_one_contact_a_day_frees_at_midnight():
    g, c = guard("co-ley-2300"), customer("CO")
    talk = [contact(t(BOGOTA, 23, 9), "voice")]
    sent = [contact(t(BOGOTA, 24, 8), "sms")]
    assert g.check(c, "sms", (), t(BOGOTA, 24, 18), sent, talk) == Block("co-ley-2300", "one-contact-a-day", t(BOGOTA, 25, 0))
    assert g.next_lawful(c, "sms", (), t(BOGOTA, 24, 18), sent, talk) == t(BOGOTA, 25, 7)


# -- 6. Mexico: the debtor's own time zone -----------------------------------------------------------


def test_mexico_debtor_in_tijuana_at_0659_waits():
    g, c = guard("mx-condusef"), customer("MX")
    assert g.check(c, "voice", (), t(TIJUANA, 24, 6, 59), [], []) == Block("mx-condusef", "hours", t(TIJUANA, 24, 7))
    assert g.check(c, "voice", (), t(TIJUANA, 24, 7, 0), [], []) is None
    eight_in_mexico_city = t(MEXICO, 24, 8).astimezone(TIJUANA)  # 06:00 in Tijuana
    assert rule_of(g.check(c, "sms", (), eight_in_mexico_city, [], [])) == "hours"
    assert g.check(c, "sms", (), t(TIJUANA, 29, 21, 59), [], []) is None  # Sunday evening: no day ban found


# -- 7. Peru -----------------------------------------------------------------------------------------


def test_peru_weekdays_seven_to_eight_no_weekends_no_holidays():
    g, c = guard("pe-indecopi"), customer("PE")
    assert g.check(c, "voice", (), t(LIMA, 28, 10), [], []) == Block("pe-indecopi", "hours", t(LIMA, 30, 7))
    assert g.check(c, "voice", (), t(LIMA, 24, 20, 0), [], []) == Block("pe-indecopi", "hours", t(LIMA, 25, 7))
    assert g.check(c, "voice", (), t(LIMA, 24, 7, 0), [], []) is None
    assert g.check(c, "email", (), t(LIMA, 24, 19, 59), [], []) is None
    assert rule_of(g.check(c, "email", (), t(LIMA, 8, 10, month=12), [], [])) == "hours"  # Inmaculada Concepción


# -- 8. Chile ----------------------------------------------------------------------------------------


def test_chile_second_call_in_a_week_waits():
    c = customer("CL")
    call = [contact(t(SANTIAGO, 23, 10), "voice")]
    assert guard("cl-sernac").check(c, "voice", (), t(SANTIAGO, 26, 10), call, []) == \
        Block("cl-sernac", "one-call-a-week", t(SANTIAGO, 30, 10))
    assert guard("cl-sernac", week="calendar").check(c, "voice", (), t(SANTIAGO, 26, 10), call, []) == \
        Block("cl-sernac", "one-call-a-week", t(SANTIAGO, 30, 0))
    assert guard("cl-sernac").check(c, "sms", (), t(SANTIAGO, 26, 10), call, []) is None  # calls and messages apart


@pytest.mark.parametrize("spacing, until", [("2-clear-days", t(SANTIAGO, 26, 0)), ("2d", t(SANTIAGO, 25, 0)),
                                            ("48h", t(SANTIAGO, 25, 10))])
def test_chile_sms_monday_then_email_tuesday_waits_for_the_spacing(spacing, until):
    g, c = guard("cl-sernac", spacing=spacing), customer("CL")
    sms = [contact(t(SANTIAGO, 23, 10), "sms")]
    assert g.check(c, "email", (), t(SANTIAGO, 24, 10), sms, []) == Block("cl-sernac", "messages-two-days-apart", until)
    assert g.check(c, "voice", (), t(SANTIAGO, 24, 10), sms, []) is None


def test_chile_third_message_in_a_week_and_stop_states():
    g, c = guard("cl-sernac", spacing="2d"), customer("CL")
    sent = [contact(t(SANTIAGO, 23, 10), "sms"), contact(t(SANTIAGO, 26, 10), "email")]
    assert g.check(c, "whatsapp", (), t(SANTIAGO, 28, 10), sent, []) == \
        Block("cl-sernac", "two-messages-a-week", t(SANTIAGO, 30, 10))
    for status in ("sued", "Insolvent"):
        assert g.check(customer("CL", legal_status=status), "letter", (), t(SANTIAGO, 24, 10), [], []) == \
            Block("cl-sernac", "sued-or-insolvent", None)
    assert g.check(customer("CL", legal_status="current"), "letter", (), t(SANTIAGO, 24, 10), [], []) is None


# -- choosing and stacking profiles -------------------------------------------------------------------


def test_auto_picks_profiles_by_country_else_the_default():
    g = Guard(resolve("auto"), auto=True, default_country="us")
    assert g.profiles_for(customer("CO")) == ("co-ley-2300",)
    assert g.profiles_for(CustomerInfo("c2")) == ("us-reg-f",)
    assert g.profiles_for(customer("AR")) == ()
    assert g.check(customer("AR"), "voice", (), t(LIMA, 29, 3), [], []) is None
    assert rule_of(g.check(customer("PE"), "voice", (), t(LIMA, 29, 10), [], [])) == "hours"
    explicit = Guard(resolve(["us-reg-f", "pe-indecopi"]))
    assert explicit.profiles_for(customer("AR")) == ("us-reg-f", "pe-indecopi")


def test_stacked_profiles_intersect_and_the_latest_block_wins():
    g, c = Guard(resolve(["us-reg-f", "pe-indecopi"])), customer("PE")
    assert g.check(c, "voice", (), t(LIMA, 27, 20, 30), [], []) == Block("pe-indecopi", "hours", t(LIMA, 30, 7))
    assert g.check(c, "voice", (), t(LIMA, 28, 21, 30), [], []) == Block("pe-indecopi", "hours", t(LIMA, 30, 7))
    assert g.check(c, "voice", (), t(LIMA, 30, 7, 30), [], []) == Block("us-reg-f", "hours", t(LIMA, 30, 8))
    assert g.next_open(c, "voice", t(LIMA, 27, 20, 30)) == t(LIMA, 30, 8)
    assert g.next_open(c, "voice", t(LIMA, 30, 9)) == t(LIMA, 30, 9)


def test_next_lawful_walks_over_every_rule():
    g, c = guard("us-reg-f"), customer("US")
    talk = [contact(t(NY, 23, 11), "voice", "A")]
    assert g.next_lawful(c, "voice", ("A",), t(NY, 23, 22), [], talk) == t(NY, 30, 8)
    assert Guard(resolve(["cl-sernac"])).next_lawful(customer("CL", legal_status="sued"), "sms", (), t(SANTIAGO, 24), [], []) is None


# -- properties: the guard against an independent reading of each law ---------------------------------


CHANNELS = st.sampled_from(["email", "sms", "whatsapp", "voice", "voice", "letter"])
IDS = st.frozensets(st.sampled_from("ABC"), max_size=2).map(lambda s: tuple(sorted(s)))


@st.composite
def situations(draw, zones):
    """A customer, a contact to decide and a history before it: sometimes sparse, sometimes a burst on one
    channel and one debt, so that every cap and lock of every profile is reached."""
    tz = ZoneInfo(draw(st.sampled_from(zones)))
    changes = dst_changes(tz.key, (2026, 2027))
    if changes and draw(st.booleans()):  # half the time a week that straddles a change of the clock
        start = draw(st.sampled_from(changes)) + dt.timedelta(minutes=draw(st.integers(-1440, 8 * 1440)))
    else:
        start = dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=draw(st.integers(0, 2 * 366 * 1440)))
    now = start.astimezone(tz)
    spread = draw(st.sampled_from([600, 3 * 1440, 7 * 1440, 15 * 1440]))
    focus, debt = draw(CHANNELS), draw(IDS)
    channels = st.sampled_from([focus] * 4) | CHANNELS
    ids = st.just(debt) | IDS

    def before():
        return (start - dt.timedelta(minutes=draw(st.integers(0, spread)))).astimezone(tz)

    sent = [SentContact(before(), focus, debt) for _ in range(draw(st.integers(0, 9)))]
    sent += [SentContact(before(), draw(channels), draw(ids)) for _ in range(draw(st.integers(0, 6)))]
    talks = [SentContact(before(), "voice", draw(ids)) for _ in range(draw(st.integers(0, 2)))]
    consents = draw(st.just(ALL) | st.none() | st.frozensets(st.sampled_from(sorted(ALL))))
    cust = CustomerInfo("c", consents=consents,
                        legal_status=draw(st.sampled_from([None, None, None, "sued", "insolvent", "current"])))
    return cust, draw(channels), draw(ids), now, sorted(sent, key=lambda s: s.at), talks


@pytest.mark.parametrize("name, chosen, law, zones", LAWS, ids=[f"{n}-{'-'.join(c.values()) or 'defaults'}"
                                                                  for n, c, _, _ in LAWS])
def test_guard_agrees_with_an_independent_reading_of_the_law(name, chosen, law, zones):
    g = guard(name, **chosen)

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(situations(zones))
    def run(situation):
        cust, channel, ids, now, sent, talks = situation
        broken = law(chosen, cust, channel, ids, now, sent, talks)
        block = g.check(cust, channel, ids, now, sent, talks)
        if block is None:
            assert not broken, f"let through although it breaks {broken}"
            return
        assert block.rule in broken, f"blocked by {block.rule}, the law finds {broken or 'nothing'} broken"
        if block.until is not None:
            assert block.until > now
            again = g.check(cust, channel, ids, block.until.astimezone(now.tzinfo), sent, talks)
            assert again is None or (again.profile, again.rule) != (block.profile, block.rule)
            assert rule_of(again) is None or again.until is None or again.until > block.until

    run()



def test_after_a_conversation_a_channel_used_this_week_waits_while_another_was_used_too():
    """Ley 2300: after direct contact every contact of the week uses one channel. Email and SMS went out
    the evening before the first conversation; email again the next morning would make two channels."""
    bogota = ZoneInfo("America/Bogota")
    now = dt.datetime(2026, 3, 28, 8, 0, tzinfo=bogota)
    evening = dt.datetime(2026, 3, 27, 23, 59, tzinfo=bogota)
    sent = [SentContact(evening, "email"), SentContact(evening, "sms")]
    talks = [SentContact(now, "voice")]
    block = guard("co-ley-2300", week="rolling").check(CustomerInfo("c", consents=ALL), "email", (), now, sent, talks)
    assert block is not None and block.rule == "one-channel-a-week"
    assert block.until == evening + dt.timedelta(days=7)  # when the SMS leaves the rolling week

# -- static checks over a plan ------------------------------------------------------------------------


def plan_doc(steps: list[dict], windows: dict | None = None, events: dict | None = None) -> dict:
    return {"windows": {"channels": windows or {"default": {d: [[480, 1140]] for d in ("mon", "tue", "wed", "thu", "fri")}},
                        "holidays": "closed"},
            "stages": [{"name": "early", "steps": steps}], "events": events or {}}


def step(step_id: str, days: int, channels, time: int | None = None, action: str = "send") -> dict:
    return {"id": step_id, "action": action, "channels": list(channels), "owner": "early",
            "trigger": {"anchor": "due", "days": days, "time_minutes": time}}


def codes(findings) -> list[tuple]:
    return [(f.code, f.severity, f.step_id, f.profile, f.rule) for f in findings]


def test_a_step_that_can_never_send_lawfully_is_an_error():
    weekend = {"default": {"sat": [[600, 720]], "sun": [[600, 720]]}, "email": {"mon": [[600, 720]]}}
    found = check_plan(plan_doc([step("s1", 3, ["voice", "sms"]), step("s2", 4, ["voice", "email"])], weekend),
                       resolve(["pe-indecopi"]))
    assert codes(found) == [
        ("compliance-never-lawful", "error", "s1", "pe-indecopi", "hours"),
        ("compliance-channel-never-lawful", "warning", "s2", "pe-indecopi", "hours"),
    ]
    assert "never meets pe-indecopi's hours (mon-fri 07:00-20:00)" in found[0].message


def test_event_steps_are_checked_too():
    night = {"default": {d: [[1290, 1440]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    found = check_plan(plan_doc([], night, {"promise_broken": [step("pb", 1, ["sms"])]}), resolve(["us-reg-f"]))
    assert codes(found) == [("compliance-never-lawful", "error", "pb", "us-reg-f", "hours")]


def test_a_trigger_time_outside_the_hours_is_a_warning():
    late = {"default": {d: [[480, 1380]] for d in ("mon", "tue", "wed", "thu", "fri")}}
    found = check_plan(plan_doc([step("s1", 2, ["sms", "email"], time=1290), step("s2", 3, ["sms"], time=600)], late),
                       resolve(["us-reg-f"]))
    assert codes(found) == [("compliance-time-outside-window", "warning", "s1", "us-reg-f", "hours")]
    assert "21:30" in found[0].message


def test_a_cadence_above_a_cap_names_the_steps_the_count_and_the_limit():
    calls = [step(f"v{d}-{h:02d}", d, ["voice"], time=h * 60) for d in range(1, 8) for h in (9, 15)]
    found = check_plan(plan_doc(calls + [step("e-9", 9, ["email"])]), resolve(["us-reg-f"]))
    assert codes(found) == [("compliance-cadence-exceeds-cap", "warning", "v1-09", "us-reg-f", "calls-7-in-7-days")]
    assert "steps v1-09..v7-15 can place 14 calls in 7 days; us-reg-f allows 7, the guard will defer 7" in found[0].message


def test_cadence_within_the_caps_is_silent_and_alternatives_count_once():
    """v7 and v7b are an experiment's two variants at one trigger: one of them calls, not both."""
    calls = [step(f"v{d}", d, ["voice", "sms"]) for d in range(1, 8)]
    calls[-1]["if"] = 'variant("e") == "x"'
    alternative = {**step("v7b", 7, ["voice"]), "if": 'variant("e") == "y"'}
    assert check_plan(plan_doc(calls + [alternative]), resolve(["us-reg-f"])) == []


def test_cadence_channels_and_spacing_rules():
    """The window is closed at the weekend: for a due date on a Friday or a Saturday, s1 and s2 both wait
    for Monday's opening, two contacts on one date."""
    steps = [step("s1", 1, ["sms"]), step("s2", 2, ["email"]), step("s3", 6, ["sms"])]
    co = check_plan(plan_doc(steps), resolve(["co-ley-2300"]))
    assert codes(co) == [("compliance-cadence-exceeds-cap", "warning", "s1", "co-ley-2300", "one-contact-a-day"),
                         ("compliance-cadence-channels", "warning", "s1", "co-ley-2300", "one-channel-a-week")]
    assert co[0].message.endswith("the guard will defer 1 (for due dates on Fri-Sat)")
    assert "after a conversation" in co[1].message
    cl = check_plan(plan_doc(steps), resolve(["cl-sernac"]))
    assert ("compliance-cadence-exceeds-cap", "warning", "s1", "cl-sernac", "two-messages-a-week") in codes(cl)
    assert ("compliance-cadence-spacing", "warning", "s2", "cl-sernac", "messages-two-days-apart") in codes(cl)
    relaxed = check_plan(plan_doc([step("s1", 1, ["sms"]), step("s2", 3, ["email"])]),
                         resolve(["cl-sernac"], {"cl-sernac": {"spacing": "2d"}}))
    assert codes(relaxed) == [("compliance-cadence-spacing", "warning", "s2", "cl-sernac", "messages-two-days-apart")]
    assert relaxed[0].message.endswith("go out 0 day(s) apart; cl-sernac wants contacts by email/sms/whatsapp/letter "
                                       "at least 2 calendar days apart, the guard will defer s2 (for due dates on "
                                       "Fri-Sat)")


def test_the_us_example_passes_its_own_profile():
    from collect.engine.compiler import compile_policy

    result = compile_policy(Path(__file__).parent.parent / "examples" / "us-consumer" / "policy.yaml")
    assert result.plan is not None
    assert check_plan(result.plan.doc, resolve(["us-reg-f"])) == []


def test_the_docs_state_every_rule_setting_and_verification_date():
    text = (Path(__file__).parent.parent / "docs" / "compliance.md").read_text(encoding="utf-8")
    assert "not legal advice" in text
    for name in profile_names():
        doc = load_profile(name)
        section = text.split(f"## {name} ", 1)[1].split("\n## ", 1)[0]
        assert f"Verified {doc['verified']}" in section
        for rule in doc["rules"]:
            assert f"`{rule['id']}`" in section, f"docs/compliance.md does not state {name}:{rule['id']}"
        for setting, spec in doc["settings"].items():
            assert f"`{setting}`" in section and all(f"`{value}`" in section for value in spec["values"])


def test_a_cadence_is_measured_in_rolling_hours_not_whole_days():
    """Calls at due+0d..due+6d 10:00 and due+7d 09:00 are 8 in 6 days 23 hours: the guard defers the 8th,
    but the check counted whole days (7 days apart) and did not warn."""
    calls = [step(f"c{d}", d, ["voice"], time=600) for d in range(7)]
    found = check_plan(plan_doc(calls + [step("c7", 7, ["voice"], time=540)]), resolve(["us-reg-f"]))
    assert codes(found) == [("compliance-cadence-exceeds-cap", "warning", "c0", "us-reg-f", "calls-7-in-7-days")]
    assert "steps c0..c7 can place 8 calls in 7 days" in found[0].message
    assert check_plan(plan_doc(calls + [step("c7", 7, ["voice"], time=600)]), resolve(["us-reg-f"])) == []


def test_a_step_without_a_time_never_makes_a_false_cadence_warning():
    """Without a time a step fires when its channel's window opens, 08:00 on weekdays and 11:00 on
    Saturdays here (Sundays are closed: a call then waits for Monday 08:00): it warns naming the
    weekdays of the due dates that make the calls too dense."""
    windows = {"default": {**{d: [[480, 1140]] for d in ("mon", "tue", "wed", "thu", "fri")}, "sat": [[660, 1140]]}}

    def cadence(steps):
        return [(f.step_id, f.message.rpartition("the guard will defer 1")[2])
                for f in check_plan(plan_doc(steps, windows), resolve(["us-reg-f"]))
                if f.code == "compliance-cadence-exceeds-cap"]

    untimed = [step(f"u{d}", d, ["voice"]) for d in range(1, 8)]
    # u7 fires by 11:00, < 7 days after c0; on a Sunday due date c0 waits for Monday 08:00, a week before u7
    assert cadence([step("c0", 0, ["voice"], time=690)] + untimed) == [("c0", " (for due dates on Mon-Sat)")]
    # and on a Saturday c0 at 10:00 waits for 11:00, when u7 fires a week later
    assert cadence([step("c0", 0, ["voice"], time=600)] + untimed) == [("c0", " (for due dates on Mon-Fri)")]
    # u0 fires at 08:00 on a weekday, 7 days 1 hour before c7; at 11:00 on a Saturday, when c7 waits for 11:00
    # too; on a Sunday both wait for Monday 08:00
    assert cadence([step(f"u{d}", d, ["voice"]) for d in range(7)] + [step("c7", 7, ["voice"], time=540)]) == []


def test_a_rolling_spacing_is_measured_in_hours():
    """cl-sernac `spacing: 48h`: an SMS at 19:00 and an email two dates later at 10:00 are 39 hours apart,
    in a window open every day until 20:00. cl-sernac's hours are closed on Sundays: an SMS due on a
    Sunday waits for Monday 08:00, 26 hours before the email (the warning quotes the closest), and an
    email due on a Sunday (a Thursday due date) waits for Monday, 61 hours after the SMS. By dates
    (`spacing: 2d`) the two are 2 apart, but 1 when the SMS waits from Sunday to Monday."""
    every_day = {"default": {d: [[480, 1200]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    steps = [step("s1", 1, ["sms"], time=1140), step("s2", 3, ["email"], time=600)]
    found = check_plan(plan_doc(steps, every_day), resolve(["cl-sernac"], {"cl-sernac": {"spacing": "48h"}}))
    assert codes(found) == [("compliance-cadence-spacing", "warning", "s2", "cl-sernac", "messages-two-days-apart")]
    assert "go out 26 hours apart" in found[0].message and "at least 48 hours apart" in found[0].message
    assert found[0].message.endswith(" (for due dates on Mon-Wed and Fri-Sun)")
    dates = check_plan(plan_doc(steps, every_day), resolve(["cl-sernac"], {"cl-sernac": {"spacing": "2d"}}))
    assert codes(dates) == codes(found)
    assert "go out 1 day(s) apart" in dates[0].message and dates[0].message.endswith(" (for due dates on Sat)")


def test_colombia_an_agent_s_call_is_the_day_s_contact_and_the_week_s_channel():
    """An agent called the customer at 11:00 (a conversation on `agent`): a call the same afternoon is a
    second contact that day, an SMS on Wednesday a second channel that week; a call on Wednesday may go.
    A conversation in which the customer called in is no contact of the collector's."""
    g, c = guard("co-ley-2300"), customer("CO")
    agent = [contact(t(BOGOTA, 24, 11), "agent")]
    assert rule_of(g.check(c, "voice", (), t(BOGOTA, 24, 15), [], agent)) == "one-contact-a-day"
    assert rule_of(g.check(c, "sms", (), t(BOGOTA, 26, 10), [], agent)) == "one-channel-a-week"
    assert g.check(c, "voice", (), t(BOGOTA, 26, 10), [], agent) is None
    assert g.check(c, "sms", (), t(BOGOTA, 24, 15), [], [contact(t(BOGOTA, 24, 11), "voice")]) is None
