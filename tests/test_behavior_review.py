"""Review findings on behavior models (docs/simulate.md): a delay too long to date is refused when the model
is read, not met as an OverflowError in the middle of a run, and YAML's true/false are not numbers."""

from __future__ import annotations

import pytest
from clitools import EMAIL_POLICY, EMAIL_PORTFOLIO
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.behavior import BehaviorError, BehaviorModel

POLICY, PORTFOLIO = EMAIL_POLICY, EMAIL_PORTFOLIO


def load(tmp_path, text: str) -> BehaviorModel:
    path = tmp_path / "b.yaml"
    path.write_text(text, encoding="utf-8")
    return BehaviorModel.load(path, seed=1)


@pytest.mark.parametrize("text, said", [
    ("delay_days: [3000000, 3000000]\n", "delay_days: must be at most 3650 days (ten years), not 3000000"),
    ("delay_days: [1, 3651]\n", "delay_days: must be at most 3650 days (ten years), not 3651"),
    ("pay_probability: true\n", "b.yaml:1:18: pay_probability: wrong type: expected a number, got true"),
    ("delay_days: [true, 3]\n", "b.yaml:1:14: delay_days.0: wrong type: expected a whole number, got true"),
    ("delay_days: [1]\n", "delay_days: must be [fewest, most]: two whole numbers of days, such as [1, 5], not [1]"),
    ("by_channel: { sms: false }\n", "by_channel.sms: wrong type: expected a number, got false"),
    ("by_stage: { late: true }\n", "by_stage.late: wrong type: expected a number, got true"),
    ("partial_share: true\n", "partial_share: wrong type: expected a number, got true"),
    ("partial_fraction: 1\n", "b.yaml:1:19: partial_fraction: must be less than 1"),
])
def test_a_value_that_cannot_be_used_is_refused_when_the_model_is_read(tmp_path, text, said):
    with pytest.raises(BehaviorError) as error:
        load(tmp_path, text)
    assert said in str(error.value)


def test_ten_years_of_delay_is_the_limit_and_whole_numbers_still_do_for_chances(tmp_path):
    spec = load(tmp_path, "pay_probability: 1\nby_stage: { s: 2 }\ndelay_days: [0, 3650]\n").spec
    assert (spec.pay_probability, spec.by_stage, spec.delay_days) == (1.0, {"s": 2.0}, (0, 3650))
    with pytest.raises(BehaviorError, match="delay_days: must be at most 3650 days"):
        load(tmp_path, "pay_probability: 1\nby_stage: { s: 2 }\ndelay_days: [0, 3651]\n")


def test_simulate_with_a_delay_past_the_calendar_exits_1_naming_delay_days(tmp_path):
    for name, text in {"policy.yaml": POLICY, "p.csv": PORTFOLIO,
                       "b.yaml": "pay_probability: 1\ndelay_days: [3000000, 3000000]\n"}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "policy.yaml"), "--portfolio", str(tmp_path / "p.csv"),
                                      "--start", "2026-03-01", "--days", "10", "--behavior", str(tmp_path / "b.yaml"),
                                      "--out", str(tmp_path / "c.csv")])
    assert not isinstance(result.exception, OverflowError), repr(result.exception)
    assert result.exit_code == 1 and "delay_days: must be at most 3650 days" in result.output
