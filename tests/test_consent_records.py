"""Consent records without any compliance profile (SPEC 4.6, engine/contacts.py): a customer with consent
records is contacted only on the channels it consented to (None: no records kept, every channel allowed);
the step falls back to the next channel with consent, and fails with `no consent` when none has. The
suite tested consent only through the Colombian profile, whose own rule hides a core that ignores it."""


import pytest
from coretools import customer, invoice, run, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHANNELS = ["whatsapp", "sms", "email"]
POLICY = """
group_by: invoice
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: a, at: due 10:00, send: [whatsapp, sms, email], template: m }
      - { id: b, at: due+1d 10:00, send: [email, sms], template: m }
"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    assert "compliance" not in POLICY
    return runtime(POLICY, tmp_path_factory.mktemp("consent"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(consents=st.none() | st.frozensets(st.sampled_from(CHANNELS)))
def test_contacts_go_only_on_consented_channels(rt, consents):
    c = customer(whatsapp="+51987654321", consents=consents)
    invoice(c, "F1", "2026-11-18")  # a Wednesday
    result = run(rt, [c], "2026-11-18", 3)
    sent = {d.step: d.channel for d in result.decisions if d.status == "sent"}
    allowed = set(CHANNELS) if consents is None else consents
    for step, channels in (("a", CHANNELS), ("b", ["email", "sms"])):
        first = next((ch for ch in channels if ch in allowed), None)
        assert sent.get(step) == first, (step, consents, sent)
        if first is None:
            failed = next(d for d in result.decisions if d.step == step and d.status == "failed")
            assert all(f"{ch}: no consent" in failed.reason for ch in channels)
