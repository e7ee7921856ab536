"""`collect simulate --compare`: every problem of both sides at once, and the summary lines that were
missing: costs of 0, no channel at all, two policies in different currencies."""

from pathlib import Path

from typer.testing import CliRunner

from collect.cli import app

runner = CliRunner()
HEAD = ('timezone: America/Lima\nwindows: { default: { mon-sun: "08:00-19:00" } }\n'
        "templates: { m: { email: { subject: s, body: b } } }\n")
STAGES = "stages: { early: { when: invoice.days_past_due >= 1, steps: [ { id: a-1, at: due+1d, send: email, template: m } ] } }\n"


def policy(folder: Path, name: str, extra: str = "currency: PEN\n", stages: str = STAGES) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(f"policy: {name}\n" + HEAD + extra + stages, encoding="utf-8")
    return str(path)


def simulate(folder: Path, new: str, old: str, portfolio: str, *more: str):
    (folder / "p.csv").write_text(portfolio, encoding="utf-8")
    return runner.invoke(app, ["simulate", new, "--compare", old, "--portfolio", str(folder / "p.csv"),
                               "--start", "2026-11-15", "--days", "5", *more])


PORTFOLIO = "invoice_id,customer_id,amount,due_date,email\nF1,C1,1000,2026-11-10,a@acme.pe\n"


def test_both_broken_policies_are_reported(tmp_path):
    bad = STAGES.replace("template: m", "templat: m")
    result = simulate(tmp_path, policy(tmp_path, "new", stages=bad), policy(tmp_path, "old", stages=bad), PORTFOLIO)
    assert result.exit_code == 1
    assert "new.yaml:" in result.output and "old.yaml:" in result.output


def test_the_bad_rows_under_each_policy_s_fields_are_all_reported(tmp_path):
    new = policy(tmp_path, "new", "currency: PEN\nfields: { customer.tier: float }\n")
    old = policy(tmp_path, "old", "currency: PEN\nfields: { customer.risk_score: float }\n")
    result = simulate(tmp_path, new, old, "invoice_id,customer_id,amount,due_date,email,tier,risk_score\n"
                                          "F1,C1,1000,2026-11-10,a@acme.pe,1,high\nF2,C2,1000,2026-11-10,b@acme.pe,gold,0.5\n")
    assert result.exit_code == 1
    assert "p.csv:2: column risk_score:" in result.output and "p.csv:3: column tier:" in result.output


def test_two_policies_in_different_currencies_are_warned_about_not_mixed(tmp_path):
    result = simulate(tmp_path, policy(tmp_path, "new", "currency: USD\n"), policy(tmp_path, "old"), PORTFOLIO,
                      "--behavior", "historic")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "old policy's invoices are in PEN and the new one's in USD" in text
    assert "2 currencies" not in text


def test_costs_of_zero_are_a_message_cost_and_no_channel_is_one_line(tmp_path):
    (tmp_path / "channels.yaml").write_text("costs: { email: 0 }\n", encoding="utf-8")
    result = simulate(tmp_path, policy(tmp_path, "new"), policy(tmp_path, "old"), PORTFOLIO,
                      "--channels", str(tmp_path / "channels.yaml"))
    assert result.exit_code == 0, result.output
    assert "Message cost: old 0.00  new 0.00" in result.output
    empty = simulate(tmp_path, policy(tmp_path, "new"), policy(tmp_path, "old"), "invoice_id,customer_id,amount,due_date\n")
    assert empty.exit_code == 0, empty.output
    assert "Contacts per channel: none" in empty.output
    priced = simulate(tmp_path, policy(tmp_path, "new"), policy(tmp_path, "old"), "invoice_id,customer_id,amount,due_date\n",
                      "--channels", str(tmp_path / "channels.yaml"))
    assert "Message cost: old 0.00  new 0.00" in priced.output  # costs given: a figure, though nothing went
