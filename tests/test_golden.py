"""Golden diagnostics: each file under golden/ lists the diagnostics it must produce.

A line `# expect: CODE LINE:COL [hint text]` expects a diagnostic with that code at that place (and, if
given, a hint containing the text). The file must produce exactly the expected set of (code, line, col).
"""

import re
from pathlib import Path

import pytest

from collect.engine.compiler import compile_policy

GOLDEN = Path(__file__).parent / "golden"
EXPECT = re.compile(r"#\s*expect:\s*(?P<code>[\w-]+)\s+(?P<line>\d+):(?P<col>\d+)\s*(?P<hint>.*)$")


def expectations(path: Path) -> list[tuple[str, int, int, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.search(line)
        if match:
            found.append((match["code"], int(match["line"]), int(match["col"]), match["hint"].strip()))
    return found


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.*")), ids=lambda p: p.name)
def test_golden(path):
    expected = expectations(path)
    result = compile_policy(path)
    got = {(d.code, d.span.line, d.span.col) for d in result.diagnostics.items}
    assert got == {e[:3] for e in expected}, "\n".join(d.render() for d in result.diagnostics.sorted())
    for code, line, col, hint in expected:
        if hint:
            diag = next(d for d in result.diagnostics.items if (d.code, d.span.line, d.span.col) == (code, line, col))
            assert hint in (diag.hint or "") + diag.message
    assert (result.plan is None) == any(d.severity == "error" for d in result.diagnostics.items)
