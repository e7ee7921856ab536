"""docs/language.md (catch-up, Stop): when a `stop` step is due, "steps due after its trigger are
`skipped: stopped by step`". The suite checked that they are not sent and that nothing waits, but not
that they are recorded: a core that silently dropped them kept passing. Seen late, at due+10d, the stop
(due+5d) leaves o9 (due+9d, already due) as a `stopped by step` row, whatever the catch-up mode; o15 is
never due for an ended invoice and gets no row."""

import pytest
from coretools import customer, invoice, run, runtime

STOP_POLICY = """
catch_up: {cu}
max_lateness: 2d
stages:
  early:
    when: invoice.days_past_due >= 1
    steps:
      - {{ id: o1, at: due+1d, send: email, template: m }}
      - {{ id: handoff, at: due+5d, stop: true }}
      - {{ id: o9, at: due+9d, send: email, template: m }}
      - {{ id: o15, at: due+15d, send: email, template: m }}
"""


@pytest.mark.parametrize("cu", ["latest", "none", "all"])
def test_steps_due_after_a_stop_are_recorded_as_stopped_by_step(tmp_path, cu):
    rt = runtime(STOP_POLICY.format(cu=cu), tmp_path)
    state = customer()
    invoice(state, "A", "2026-10-25")
    result = run(rt, [state], "2026-11-04", 20)
    rows = [(d.step, d.status, d.reason) for d in result.decisions]
    assert rows.count(("o9", "skipped", "stopped by step")) == 1, rows
    assert [r for r in rows if r[0] == "o9"] == [("o9", "skipped", "stopped by step")]
    assert not any(r[0] == "o15" for r in rows)
    assert state.done.get("o9|A") == "skipped"
