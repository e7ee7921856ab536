"""A reply that revokes consent is an opt-out for its channel (TCPA: consent revoked by any reasonable means
must be honoured; COMPLIANCE-NOTES). The rule (engine/storeio.py is_stop_reply): the reply's first word is
an opt-out keyword, or its first two words are a two-word one (`opt out`). Words are runs of letters in
any script; punctuation (also Spanish `¡` `¿`), digits, emoji and line breaks only separate them; case
and accents do not matter."""

from __future__ import annotations

import pytest

from collect.engine import store as s
from collect.engine.portfolio import ColumnMap
from collect.engine.storeio import import_file, is_stop_reply, load_states

REVOKING = ["STOP", "stop", "Stop.", "Stop!", "Stop, please", "stop?", "STOP\nthanks", "STOP\r\nmore text",
            "  quit  ", "¡Alto!", "¡ALTO!", "Álto", "ALTO por favor", "Baja", "BÁJA", "cancelar.", "Opt out",
            "OPT OUT", "opt-out", "Opt-Out!", "OPTOUT", "optout please", "unsubscribe me", "Stop all",
            "STOPALL", "End.", "revoke", '"stop"', "(stop)", "🛑 STOP", "Stop2", "12 stop", "ｓｔｏｐ"]
KEPT = ["", "   ", "?!", "please don't stop", "I paid, stop", "stopped paying? no", "Stopping by later",
        "Optimal", "opt in", "options", "Alton", "Hola, ya pagué", "ok", "When do I stop paying?", "OPT",
        ]


@pytest.mark.parametrize("reply", REVOKING)
def test_a_reply_starting_with_an_opt_out_keyword_revokes_consent(reply):
    assert is_stop_reply(reply)


@pytest.mark.parametrize("reply", KEPT)
def test_a_reply_not_starting_with_one_keeps_consent(reply):
    assert not is_stop_reply(reply)


def test_no_detail_is_no_opt_out():
    assert not is_stop_reply(None)


def _store(db_url, tmp_path):
    engine = s.connect(db_url)
    inv = tmp_path / "i.csv"
    inv.write_text("invoice_id,customer_id,amount,due_date,phone,timezone,country\n"
                   "A,C1,100,2026-11-02,+12125550123,America/New_York,US\n"
                   "B,C2,100,2026-11-02,+12125550124,America/New_York,US\n")
    import_file(engine, "invoices", inv, fields={}, colmap=ColumnMap(), default_tz="America/New_York")
    return engine


def _reply(engine, tmp_path, cid: str, channel: str, text: str, minute: int = 0) -> None:
    ev = tmp_path / "e.csv"
    detail = text.replace('"', '""')
    ev.write_text(f'at,channel,type,customer_id,detail\n2026-11-03T10:{minute:02d}:00-05:00,{channel},replied,{cid},'
                  f'"{detail}"\n', encoding="utf-8")
    import_file(engine, "events", ev, fields={}, colmap=ColumnMap(), default_tz="America/New_York")


def _optouts(engine) -> dict[str, frozenset]:
    with engine.connect() as conn:
        return {cid: st.customer.optouts for cid, st in load_states(conn, ["C1", "C2"]).items()}


@pytest.mark.parametrize("reply", ["Stop, please", "Opt out", "stop?", "STOP\nthanks", "¡Alto!", "opt-out"])
def test_an_imported_reply_that_revokes_consent_opts_out_of_its_channel_only(db_url, tmp_path, reply):
    engine = _store(db_url, tmp_path)
    _reply(engine, tmp_path, "C1", "sms", reply)
    assert _optouts(engine) == {"C1": frozenset({"sms"}), "C2": frozenset()}


def test_an_imported_reply_that_merely_mentions_stop_changes_nothing(db_url, tmp_path):
    engine = _store(db_url, tmp_path)
    for minute, text in enumerate(["please don't stop", "I paid, stop", "Optimal time is 5pm"]):
        _reply(engine, tmp_path, "C1", "sms", text, minute)
    _reply(engine, tmp_path, "C2", "whatsapp", "¿Alto? ok", 9)
    assert _optouts(engine) == {"C1": frozenset(), "C2": frozenset({"whatsapp"})}
