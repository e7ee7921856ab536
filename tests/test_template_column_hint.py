"""5c2e3f0 'templates: an undeclared CSV column says how to declare it under fields:, as expressions do'.
engine/templatecheck.py: `suggest(attr, known) or _declare_hint(base, attr)`: any loose look-alike
(difflib, cutoff 0.6) wins, so a real CSV column such as `invoice.amount_usd` or `customer.Segmento` still gets
only "did you mean 'amount'?" (or no hint), the very walkthrough complaint b8c0a94 fixed for expressions,
which answer "did you mean 'invoice.amount'? If it is a column of your CSV, declare it under fields ..."."""

import pytest

from collect.dsl.fields import schema_for
from collect.engine.compiler import compile_policy
from collect.engine.templates import check_template

SCHEMA = schema_for({"customer.tier": "str"})


def expression_hint(field: str) -> str:
    text = (f'policy: p\ntimezone: UTC\nstages:\n  s:\n    when: {field} == "x"\n    steps: []\n')
    [diag] = [d for d in compile_policy("p.yaml", text=text).diagnostics.items if d.code == "unknown-field"]
    return diag.hint


@pytest.mark.parametrize("field", ["invoice.amount_usd", "customer.number", "customer.Segmento"])
def test_a_template_explains_an_undeclared_column_as_an_expression_does(field):
    assert "declare" in expression_hint(field)  # the expression's hint says how to declare it
    [issue] = check_template("{{ %s }}" % field, SCHEMA)
    assert issue.code == "unknown-attribute"
    assert issue.hint and "fields:" in issue.hint, issue.hint  # before the fix: "did you mean 'amount'?" / None
