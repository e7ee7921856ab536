"""The stage of an invoice remembered by its days past due (Runtime.stage_by_days) decides exactly what
working it out at every decision decides: used only when the stages' `when` read nothing else."""

import datetime as dt

import pytest
from coretools import customer, invoice, run, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.simrun import contacts_text

STAGES = """
stages:
  first:
    when: {first}
    steps:
      - {{ id: f0, at: due-3d, send: email, template: m }}
      - {{ id: f1, at: due+2d 10:00, send: [sms, email], template: m }}
  second:
    when: {second}
    steps:
      - {{ id: s1, at: due+5d, send: email, template: m }}
      - {{ id: s2, at: due+20d, escalate: {{ queue: agents }} }}
"""

DAYS_ONLY = ["invoice.days_past_due <= 0", "invoice.days_past_due between 1 and 30", "invoice.days_past_due > 3",
             "not invoice.days_past_due < 2", "invoice.days_past_due in [2, 5, 6]", "invoice.days_past_due * 2 >= 8",
             "invoice.days_past_due is not null and invoice.days_past_due > 1 or invoice.days_past_due == -3",
             "-invoice.days_past_due >= 1", "true"]
# each reads something besides the days past due: the stage is not a function of them alone
OTHER = ["invoice.days_past_due > 0 and invoice.amount > 500", "invoice.balance > 100",
         "invoice.days_past_due > 0 and customer.risk_score < 0.5", "days_since(invoice.due_date) > 2",
         "invoice.days_to_due < -1", "big and invoice.days_past_due > 0"]
BODY = """
fields: {{ customer.risk_score: float }}
segments: {{ big: invoice.amount >= 1000 }}
""" + STAGES


@pytest.mark.parametrize("when", DAYS_ONLY)
def test_remembered_when_the_stages_read_only_the_days(tmp_path, when):
    rt = runtime(BODY.format(first=when, second="invoice.days_past_due > 0"), tmp_path)
    assert rt.stage_by_days == {}


@pytest.mark.parametrize("when", OTHER)
def test_worked_out_each_time_when_a_stage_reads_anything_else(tmp_path, when):
    rt = runtime(BODY.format(first="invoice.days_past_due <= 0", second=when), tmp_path)
    assert rt.stage_by_days is None


def _people(draw_amounts):
    state = customer("c1", attrs={"risk_score": 0.2})
    for n, (due, amount) in enumerate(draw_amounts):
        invoice(state, f"f{n}", (dt.date(2026, 3, 2) + dt.timedelta(days=due)).isoformat(), str(amount))
    return [state]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.sampled_from(DAYS_ONLY + OTHER), second=st.sampled_from(DAYS_ONLY + OTHER),
       invoices=st.lists(st.tuples(st.integers(0, 6), st.sampled_from([200, 800, 1500])), min_size=1, max_size=4))
def test_the_remembered_stage_decides_as_the_scan(tmp_path_factory, first, second, invoices):
    """Invoices of several amounts due within a week (often on the same day, so that their stages are
    asked at the same days past due): with the stages remembered by days (where the runtime allows it)
    and with every stage condition asked at every decision, the same contacts."""
    rt = runtime(BODY.format(first=first, second=second), tmp_path_factory.mktemp("p"))
    remembered = contacts_text(run(rt, _people(invoices), "2026-02-25", 60), "csv")
    rt.stage_by_days = None
    assert contacts_text(run(rt, _people(invoices), "2026-02-25", 60), "csv") == remembered
