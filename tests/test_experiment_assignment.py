"""Experiment assignment is deterministic "across runs and machines" (docs/language.md, experiments): a
customer in the middle of an experiment must keep its variant after a restart, on another worker, and
after an upgrade. The suite only compared assignments inside one process, which Python's salted `hash`
would pass too."""

import json
import os
import subprocess
import sys
from textwrap import dedent

import pytest
from coretools import runtime

POLICY = """
experiments:
  tone: { unit: customer, variants: { soft: 30, firm: 30, holdout: 40 } }
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: a, at: due, send: email, template: m }
"""
IDS = [f"c{i}" for i in range(16)] + [f"F-{i}" for i in range(8)]
# as first computed: bucket = sha256("tone:<id>")[:8] % 100; variants in name order, so firm is 0-29,
# holdout 30-69, soft 70-99
PINNED = {"c0": "holdout", "c1": "holdout", "c2": "holdout", "c3": "holdout", "c4": "soft", "c5": "soft",
          "c6": "soft", "c7": "holdout", "c8": "firm", "c9": "firm", "c10": "firm", "c11": "holdout",
          "c12": "holdout", "c13": "holdout", "c14": "firm", "c15": "firm", "F-0": "soft", "F-1": "soft",
          "F-2": "holdout", "F-3": "firm", "F-4": "holdout", "F-5": "soft", "F-6": "firm", "F-7": "holdout"}


@pytest.fixture(scope="module")
def policy_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exp")
    runtime(POLICY, folder)  # writes folder/policy.yaml and checks that it compiles
    return folder / "policy.yaml"


def _assign_in_a_new_process(path, seed: str) -> dict:
    code = dedent(f"""
        import json
        from collect.engine.compiler import compile_policy
        from collect.engine.runtime import Runtime
        rt = Runtime(compile_policy({str(path)!r}).plan)
        print(json.dumps({{i: rt.variant("tone", i) for i in {IDS!r}}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_assignment_is_the_same_in_every_process(policy_path):
    first, second = _assign_in_a_new_process(policy_path, "1"), _assign_in_a_new_process(policy_path, "2")
    assert first == second


def test_assignment_does_not_move_between_versions(policy_path, tmp_path):
    rt = runtime(POLICY, tmp_path)
    assert {i: rt.variant("tone", i) for i in IDS} == PINNED
