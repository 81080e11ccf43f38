"""An edit that writes a regex matcher is verified through its plain twin (the same text
with ``=``/``!=`` for ``=~``/``!~``), and each regex it writes is compiled on its own:
what is accepted is exactly what verifying the edited text itself accepts."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest

from errclass.migrate import Selection, _expr, migrate_expr
from errclass.migrate._semantics import Plan

M = "stream_outcomes_total"
PRESERVE = Selection((M,))

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def _matchers(text: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.extend([(m.name, _OPS[str(m.op)], m.value) for m in node.matchers.matchers])

    promql_parser.walk(promql_parser.parse(text), pre_visit=visit)
    return found


def _parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts migrate hands to the parser, from now on."""
    seen: list[str] = []
    real = _expr.parse

    def spy(text: str) -> Any:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(_expr, "parse", spy)
    return seen


@pytest.mark.parametrize(
    ("before", "after", "twin"),
    [
        # a regex matcher added in place of an equality one
        (
            f'rate({M}{{job="a", reason="write_failed"}}[5m])',
            f'rate({M}{{job="a", reason=~"write_failed|client_gone"}}[5m])',
            f'rate({M}{{job="a", reason="write_failed|client_gone"}}[5m])',
        ),
        (
            f"{M}{{reason!='write_failed'}}",
            f"{M}{{reason!~'write_failed|client_gone'}}",
            f"{M}{{reason!='write_failed|client_gone'}}",
        ),
        # a regex matcher whose value grows: its operator is made plain in the twin only
        (
            f'{M}{{code=~"5..", reason=~"write_failed|creation_failed"}}',
            f'{M}{{code=~"5..", reason=~"write_failed|creation_failed|client_gone"}}',
            f'{M}{{code=~"5..", reason="write_failed|creation_failed|client_gone"}}',
        ),
    ],
)
def test_a_regex_edit_is_verified_through_its_plain_twin(
    monkeypatch: pytest.MonkeyPatch, before: str, after: str, twin: str
) -> None:
    _expr._regex_error.cache_clear()
    seen = _parsed(monkeypatch)
    result = migrate_expr(before, PRESERVE)
    assert result.new_text == after
    value = next(v for lbl, _, v in _matchers(after) if lbl == "reason")
    # the original, the regex written compiled alone, the twin: nothing else is parsed
    assert seen == [before, f'x{{_=~"{value}"}}', twin]
    assert [f.status for f in result.findings][:1] == ["changed"]
    # and the edit itself parses to what the twin promised, regex operators and all
    plain = {"=~": "=", "!~": "!="}
    assert [(lbl, plain.get(op, op), v) for lbl, op, v in _matchers(after)] == [
        (lbl, plain.get(op, op), v) for lbl, op, v in _matchers(twin)
    ]
    assert [op for _, op, _ in _matchers(after)] != [op for _, op, _ in _matchers(twin)]


def test_an_edit_without_a_regex_is_verified_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _parsed(monkeypatch)
    split = Selection((M,), mode="split")
    result = migrate_expr(f'sum(rate({M}{{reason!="ok"}}[5m]))', split)
    assert result.new_text == f'sum(rate({M}{{reason!="ok", reason!="client_gone"}}[5m]))'
    assert seen == [result.text, result.new_text]


@pytest.mark.parametrize("op", ["=~", "!~"])
def test_a_regex_that_does_not_compile_is_refused(monkeypatch: pytest.MonkeyPatch, op: str) -> None:
    # no rule of either mode writes one; a plan that did must still be caught
    monkeypatch.setattr(_expr, "decide", lambda *_: Plan(add=("reason", op, "write_(failed")))
    before = f'{M}{{reason="write_failed"}}'
    with pytest.raises(ValueError):  # what the edit would have been does not parse
        promql_parser.parse(f'{M}{{reason="write_failed", reason{op}"write_(failed"}}')
    result = migrate_expr(before, Selection((M,), mode="split"))
    assert result.new_text == before and not result.edits
    assert [f.message for f in result.findings][-1].startswith(
        "left untouched: the edited expression does not parse"
    )


def test_a_regex_that_compiles_is_accepted_in_any_place(monkeypatch: pytest.MonkeyPatch) -> None:
    # the check of a value is remembered: the same value written again is accepted again
    monkeypatch.setattr(_expr, "decide", lambda *_: Plan(add=("reason", "!~", "client_gone|x")))
    _expr._regex_error.cache_clear()
    for before in (f'{M}{{reason="write_failed"}}', f"sum({M})"):
        result = migrate_expr(before, Selection((M,), mode="split"))
        assert result.changed, result.findings
        assert ("reason", "!~", "client_gone|x") in _matchers(result.new_text)
    info = _expr._regex_error.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # compiled once, for both expressions
