"""Behavior models (`collect simulate --behavior FILE`, docs/simulate.md): every value that would make a
run meaningless is refused with where and why, and names the policy does not have are warned about."""

from __future__ import annotations

from pathlib import Path

import pytest

from collect.engine.behavior import BehaviorError, BehaviorModel
from collect.engine.compiler import compile_policy

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pe-b2b"


def load(tmp_path, text: str) -> BehaviorModel:
    path = tmp_path / "b.yaml"
    path.write_text(text, encoding="utf-8")
    return BehaviorModel.load(path, seed=1)


@pytest.mark.parametrize("text, said", [
    ("delay_days: [3, 1]\n", "delay_days: must be [fewest, most] days with 0 <= fewest <= most, not [3, 1]"),
    ("delay_days: [-3, 2]\n", "delay_days: must be [fewest, most] days with 0 <= fewest <= most, not [-3, 2]"),
    ("by_channel: { whatsap: 0.1 }\n", "by_channel: 'whatsap' is not a sending channel (email, sms, whatsapp, "
                                       "voice, letter) (did you mean 'whatsapp'?)"),
    ("by_channel: { agent: 0.1 }\n", "by_channel: 'agent' is not a sending channel"),
    ("by_channel: { sms: 1.5 }\n", "b.yaml:1:20: by_channel.sms: must be less than or equal to 1"),
    ("by_stage: { late: -1 }\n", "b.yaml:1:19: by_stage.late: must be greater than or equal to 0"),
    ("by_segment: { risky: -0.5 }\n", "b.yaml:1:22: by_segment.risky: must be greater than or equal to 0"),
    ("- pay_probability: 0.1\n", "a behavior model is a mapping of keys (pay_probability: 0.05 ...), not a list"),
])
def test_a_meaningless_value_is_refused_with_where_and_why(tmp_path, text, said):
    with pytest.raises(BehaviorError) as error:
        load(tmp_path, text)
    assert said in str(error.value) and str(error.value).startswith(str(tmp_path / "b.yaml"))


def test_every_problem_of_a_model_is_reported_at_once(tmp_path):
    with pytest.raises(BehaviorError) as error:
        load(tmp_path, "delay_days: [3, 1]\nby_stage: { late: -1 }\npay_probability: 2\n")
    # one line each, at its line and column
    assert [line.split(": ")[:2] for line in str(error.value).splitlines()] == [
        [f"{tmp_path / 'b.yaml'}:3:18", "pay_probability"], [f"{tmp_path / 'b.yaml'}:2:19", "by_stage.late"],
        [f"{tmp_path / 'b.yaml'}:1:13", "delay_days"]]


def test_names_the_policy_does_not_have_are_warned_about_with_a_suggestion(tmp_path):
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    model = load(tmp_path, "by_stage: { Temprana: 1.2, tardia: 0.5, promise_broken: 2 }\n"
                           "by_segment: { low_risk: 1, hig_risk: 2 }\n")
    assert model.unknown_names(plan) == [
        "by_stage: 'Temprana' is not a stage or event type of policy 'b2b-pe', so it changes nothing "
        "(did you mean 'temprana'?)",
        "by_segment: 'hig_risk' is not a segment of policy 'b2b-pe', so it changes nothing (did you mean 'low_risk'?)"]
    assert BehaviorModel.load(EXAMPLE / "behavior.yaml", 1).unknown_names(plan) == []


def test_simulate_warns_about_such_names_and_runs_on(tmp_path):
    from typer.testing import CliRunner

    from collect.cli import app

    (tmp_path / "b.yaml").write_text("by_stage: { Temprana: 1.2 }\n", encoding="utf-8")
    args = ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"), "--days", "3",
            "--behavior", str(tmp_path / "b.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0
    assert (f"{tmp_path / 'b.yaml'}: warning: by_stage: 'Temprana' is not a stage or event type of policy 'b2b-pe', "
            "so it changes nothing (did you mean 'temprana'?)") in result.output
    assert CliRunner().invoke(app, args + ["--tick", "0"]).exit_code == 2  # was a ZeroDivisionError
