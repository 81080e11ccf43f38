"""errclass migrate on single PromQL expressions: the matcher rules of both modes, Grafana
variables, minimal edits, and everything that must be left untouched."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from errclass.migrate import Selection, migrate_expr
from errclass.migrate._lexer import mask, selectors

M = "stream_outcomes_total"
PRESERVE = Selection((M,))
SPLIT = Selection((M,), mode="split")
BOTH = Selection((M,), split=("client_gone", "deadline_exceeded"))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (f'{M}{{reason="write_failed"}}', f'{M}{{reason=~"write_failed|client_gone"}}'),
        (f'{M}{{reason!="write_failed"}}', f'{M}{{reason!~"write_failed|client_gone"}}'),
        (
            f'{M}{{reason=~"write_failed|creation_failed"}}',
            f'{M}{{reason=~"write_failed|creation_failed|client_gone"}}',
        ),
        (f'{M}{{reason!~"write_.*"}}', f'{M}{{reason!~"write_.*|client_gone"}}'),
        # already matching both: nothing to do
        (f'{M}{{reason=~"write_failed|client_gone"}}', None),
        (f'{M}{{reason!="ok"}}', None),
        (f'{M}{{reason="ok"}}', None),
        (f'{M}{{reason=~".+"}}', None),
        (f"sum(rate({M}[5m]))", None),
        # another metric, another label
        ('other_total{reason="write_failed"}', None),
        (f'{M}{{cause="write_failed"}}', None),
        # spacing, quoting and comments are kept
        (
            f"{M}{{ reason = 'write_failed' }}  # legacy",
            f"{M}{{ reason =~ 'write_failed|client_gone' }}  # legacy",
        ),
        (f"{M}{{reason=`write_failed`}}", f"{M}{{reason=~`write_failed|client_gone`}}"),
    ],
)
def test_preserve_keeps_what_each_matcher_matched(before: str, after: str | None) -> None:
    r = migrate_expr(before, PRESERVE)
    assert r.new_text == (after or before)
    assert [f.status for f in r.findings if f.status != "manual"] == (["changed"] if after else [])
    # summed over the reason label, the numbers are exactly what they were
    summed = migrate_expr(f"sum(\n{before}\n)", PRESERVE)
    assert summed.new_text == f"sum(\n{after or before}\n)"
    assert [f.status for f in summed.findings] == (["changed"] if after else [])


def test_preserve_warns_when_the_reason_label_survives() -> None:
    """Matching the same series is not the same numbers when the reason label is kept:
    one write_failed series becomes two, and a per-series threshold may stop firing."""
    for expr in (
        f'rate({M}{{reason="write_failed"}}[5m]) > 1',
        f'sum by (reason) (rate({M}{{reason="write_failed"}}[5m]))',
        f'topk(3, rate({M}{{reason="write_failed"}}[5m]))',
    ):
        r = migrate_expr(expr, PRESERVE)
        assert r.changed
        [note] = [f for f in r.findings if f.status == "manual"]
        assert "keeps the reason label" in note.message
        assert "sum without (reason)" in note.message
    for expr in (
        f'sum(rate({M}{{reason="write_failed"}}[5m])) > 1',
        f'sum without (reason, instance) (rate({M}{{reason="write_failed"}}[5m]))',
        f'max by (job) (rate({M}{{reason="write_failed"}}[5m]))',
        f'scalar(rate({M}{{reason="write_failed"}}[5m]))',
    ):
        assert [f.status for f in migrate_expr(expr, PRESERVE).findings] == ["changed"]
    # a label_values() variable only lists values: no warning there
    quiet = migrate_expr(f'{M}{{reason="write_failed"}}', PRESERVE, series=False)
    assert [f.status for f in quiet.findings] == ["changed"]


def test_preserve_with_several_split_values() -> None:
    r = migrate_expr(f'{M}{{reason="write_failed"}}', BOTH)
    assert r.new_text == f'{M}{{reason=~"write_failed|client_gone|deadline_exceeded"}}'


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # selectors on the old value already mean real faults after the split
        (f'{M}{{reason="write_failed"}}', None),
        # "not ok" counted client_gone as a fault: exclude it, beside what was there
        (f'{M}{{reason!="ok"}}', f'{M}{{reason!="ok", reason!="client_gone"}}'),
        (f'{M}{{reason!~"ok|success"}}', f'{M}{{reason!~"ok|success", reason!="client_gone"}}'),
        (f'{M}{{reason!="write_failed"}}', f'{M}{{reason!="write_failed", reason!="client_gone"}}'),
        # quoted like the matcher before it (a raw `...` string cannot escape: "...")
        (f"{M}{{reason!='ok'}}", f"{M}{{reason!='ok', reason!='client_gone'}}"),
        (f"{M}{{reason!=`ok`}}", f'{M}{{reason!=`ok`, reason!="client_gone"}}'),
        # a preserve-migrated selector goes back to the real faults
        (f'{M}{{reason=~"write_failed|client_gone"}}', f'{M}{{reason=~"write_failed"}}'),
        # a regex that is not a plain list gets an exclusion beside it
        (
            f'{M}{{reason=~".+_failed|client_.*"}}',
            f'{M}{{reason=~".+_failed|client_.*", reason!="client_gone"}}',
        ),
        # a plain total outside a ratio is throughput: it keeps every outcome
        (f"sum(rate({M}[5m]))", None),
        # asking for client_gone on purpose is left alone
        (f'{M}{{reason="client_gone"}}', None),
        # ratios: the split values leave both sides
        (
            f'sum(rate({M}{{reason="write_failed"}}[5m])) / sum(rate({M}[5m]))',
            f'sum(rate({M}{{reason="write_failed"}}[5m])) / '
            f'sum(rate({M}{{reason!="client_gone"}}[5m]))',
        ),
        (
            f'sum(rate({M}{{result="error"}}[5m])) / sum(rate({M}{{}}[5m]))',
            f'sum(rate({M}{{result="error", reason!="client_gone"}}[5m])) / '
            f'sum(rate({M}{{reason!="client_gone"}}[5m]))',
        ),
        # a client_gone share on purpose: the ratio is left alone
        (f'sum(rate({M}{{reason="client_gone"}}[5m])) / sum(rate({M}[5m]))', None),
    ],
)
def test_split_counts_real_faults_only(before: str, after: str | None) -> None:
    r = migrate_expr(before, SPLIT)
    assert r.new_text == (after or before)


def test_split_lists_alerts_tuned_on_the_old_volume() -> None:
    alert = f'sum(rate({M}{{reason="write_failed"}}[5m])) > 0.5'
    found = migrate_expr(alert, SPLIT, alert=True).findings
    assert [f.status for f in found] == ["retune"]
    # a recording rule or a dashboard query has no threshold to re-tune
    assert migrate_expr(alert, SPLIT).findings == []
    # a throughput alert does not change with the split
    assert migrate_expr(f"sum(rate({M}[5m])) > 100", SPLIT, alert=True).findings == []
    # once re-tuned and marked, it is quiet
    assert migrate_expr(alert + "  # errclass: retuned", SPLIT, alert=True).findings == []
    # preserve mode keeps the (summed) numbers, so thresholds stay valid
    assert [f.status for f in migrate_expr(alert, PRESERVE, alert=True).findings] == ["changed"]


@pytest.mark.parametrize(
    "expr",
    [
        f'{M}{{reason="client_gone"}}',  # pre-split this matched nothing
        f'{M}{{reason=~"client_.*"}}',
        f'{M}{{reason=~"$reason"}}',  # depends on a dashboard variable
        f'{M}{{reason="${{reason}}"}}',
        f'{M}{{reason=~"\\\\pL+"}}',  # RE2 syntax Python cannot evaluate
    ],
)
def test_undecidable_selectors_are_reported_not_guessed(expr: str) -> None:
    r = migrate_expr(expr, PRESERVE)
    assert r.new_text == expr
    assert [f.status for f in r.findings] == ["manual"]


def test_metric_selected_by_name_regex_is_reported() -> None:
    expr = '{__name__=~"stream_.*", reason="write_failed"}'
    r = migrate_expr(expr, PRESERVE)
    assert r.new_text == expr
    assert [f.status for f in r.findings] == ["manual"]


@pytest.mark.parametrize(
    ("expr", "reported"),
    [
        (f'{M}{{reason="write_failed" or reason="ok"}}', True),
        (f'{{__name__="{M}" or __name__="other_total"}}', True),
        ('{__name__=~"stream_.*" or job="a"}', True),
        ('other_total{reason="write_failed" or reason="ok"}', False),
    ],
)
def test_matchers_joined_by_or_are_reported_not_rewritten(expr: str, reported: bool) -> None:
    """promql-parser keeps ``or`` groups apart from the matchers: such a selector on the
    metric was once skipped silently (found by an adversarial review)."""
    for sel in (PRESERVE, SPLIT):
        r = migrate_expr(expr, sel)
        assert r.new_text == expr
        assert [(f.status, f.old) for f in r.findings] == ([("manual", expr)] if reported else [])


def test_name_matcher_and_metric_patterns_are_targets() -> None:
    expr = f'{{__name__="{M}", reason="write_failed"}}'
    assert (
        migrate_expr(expr, PRESERVE).new_text
        == f'{{__name__="{M}", reason=~"write_failed|client_gone"}}'
    )
    several = Selection(("a_total", "b_total"))
    both = " + ".join(f'{m}{{reason="write_failed"}}' for m in ("a_total", "b_total", "c_total"))
    assert migrate_expr(both, several).new_text.count("client_gone") == 2
    pattern = Selection((r"stream_.*_total",))
    assert "client_gone" in migrate_expr(f'{M}{{reason="write_failed"}}', pattern).new_text
    assert migrate_expr('other{reason="write_failed"}', pattern).findings == []


@pytest.mark.parametrize(
    "expr",
    [
        f'sum by (instance,) (rate({M}{{reason="write_failed", job=~"$job"}}[$grouping_interval]))',
        f'rate({M}{{reason="write_failed"}}[${{__range_s}}s] offset $shift)',
        f'max_over_time(rate({M}{{reason="write_failed"}}[5m])[$__range:$__interval]) > $threshold',
        f'sum(rate({M}{{reason="write_failed"}}[{{{{.window}}}}]))'
        f" / sum(rate({M}[{{{{.window}}}}]))",
        f'rate({M}{{reason="write_failed", instance=~"[[instance]]"}}[[[interval]]])',
        f'sum(rate({M}{{reason="write_failed"}}[5m])) by (job) # why: legacy "alert"\n  > 0',
    ],
)
def test_template_variables_and_comments_survive(expr: str) -> None:
    r = migrate_expr(expr, PRESERVE)
    assert r.new_text == expr.replace('reason="write_failed"', 'reason=~"write_failed|client_gone"')
    assert [f.status for f in r.findings if f.status != "manual"] == ["changed"]


def test_masking_is_deterministic_and_only_outside_strings() -> None:
    text = 'rate(m{job=~"$job"}[$__rate_interval]) offset ${shift} > $threshold'
    assert mask(text) == 'rate(m{job=~"$job"}[5m]) offset 5m > 1'
    assert mask(text) == mask(text)
    assert mask("rate(m[${__range_s}s])") == "rate(m[5s])"
    # `offset` as a word only, and outside literals and comments: a duration after it
    assert mask("m offset\n $d + m_offset $d") == "m offset\n 5m + m_offset 1"
    assert mask("m # $c\n + 'offset' $d + `$e`") == "m # $c\n + 'offset' 1 + `$e`"


def test_edits_are_minimal() -> None:
    text = f'sum(rate({M}{{reason="write_failed"}}[5m]))'
    r = migrate_expr(text, PRESERVE)
    # the operator and one inserted alternative: nothing else is rewritten
    assert sorted((text[a:b], new) for a, b, new in r.edits) == [("", "|client_gone"), ("=", "=~")]


def test_unparseable_expressions_are_reported_and_untouched() -> None:
    bad = f'sum(rate({M}{{reason="write_failed"}}[5m])'
    r = migrate_expr(bad, PRESERVE)
    assert r.new_text == bad
    assert [f.status for f in r.findings] == ["skipped"]
    # an expression that cannot hold the metric is not even read
    assert migrate_expr("sum(", PRESERVE).findings == []


def test_lexer_finds_selectors_in_textual_order_with_positions() -> None:
    text = 'sum by (job) (a{x="1", y=~"2",}) / on (job) group_left b offset 5m + {__name__="c"}'
    found = selectors(text)
    assert [s.name for s in found] == ["a", "b", None]
    a = found[0]
    assert [text[m.start : m.end] for m in a.matchers] == ['x="1"', 'y=~"2"']
    assert a.trailing_comma
    assert a.separator == ", "


def test_selection_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="metric"):
        Selection(())
    with pytest.raises(ValueError, match="mode"):
        Selection((M,), mode="rewrite")
    with pytest.raises(ValueError, match="both"):
        Selection((M,), split=("write_failed",))
    with pytest.raises(ValueError, match="label"):
        Selection((M,), label="bad-label")
    with pytest.raises(ValueError, match="regex"):
        Selection(("stream_(",))


# A correct edit, then ways an edit could go wrong: each must be refused by the
# verification (the edited text is re-parsed and compared with the intended tree).
_RATIO = f'sum(rate({M}{{job="a", reason!="ok"}}[5m] offset 1m)) / sum(rate({M}{{job="a"}}[5m]))'


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (lambda t: t.replace("[5m] offset", "[5m] offset ("), "does not parse"),
        (lambda t: t.replace("client_gone", "client_gon", 1), "selector 1 did not come out"),
        (lambda t: t.replace('job="a", reason', 'job="b", reason', 1), "selector 1 did not"),
        (lambda t: t.replace("offset 1m", "offset 2m"), "changed more than the intended"),
        (lambda t: t.replace("/ sum(", "/ max("), "changed more than the intended"),
        (lambda t: t.replace("sum(rate(", "sum(-rate(", 1), "changed the structure"),
        (lambda t: t.replace(f"{M}{{job", "other{job", 1), "selector 1 did not come out"),
    ],
)
def test_an_edit_that_means_something_else_is_refused(
    monkeypatch: pytest.MonkeyPatch, spoil: Callable[[str], str], why: str
) -> None:
    from errclass.migrate import _expr

    good = migrate_expr(_RATIO, SPLIT)
    assert good.changed and not [f for f in good.findings if f.status == "skipped"]
    real = _expr.apply_edits

    def spoiled(text: str, edits: list[tuple[int, int, str]]) -> str:
        return spoil(real(text, edits))

    monkeypatch.setattr(_expr, "apply_edits", spoiled)
    r = migrate_expr(_RATIO, SPLIT)
    assert not r.changed and r.edits == []
    [skipped] = [f for f in r.findings if f.status == "skipped"]
    assert why in skipped.message
    assert not [f for f in r.findings if f.status == "changed"]


def test_findings_show_each_selector_as_written_and_as_it_will_be() -> None:
    r = migrate_expr(f"sum(rate({M}{{job='a',reason!='ok'}}[5m])) / sum(rate({M}[5m]))", SPLIT)
    shown = [(f.old, f.new) for f in r.findings if f.status == "changed"]
    assert shown == [
        (f"{M}{{job='a',reason!='ok'}}", f"{M}{{job='a',reason!='ok',reason!='client_gone'}}"),
        (M, f'{M}{{reason!="client_gone"}}'),
    ]
    # a selector written over several lines is shown on one
    r = migrate_expr(f'{M}{{\n  job="a",\n  reason="write_failed"\n}}', PRESERVE)
    [changed] = [f for f in r.findings if f.status == "changed"]
    assert (changed.old, changed.new) == (
        f'{M}{{job="a", reason="write_failed"}}',
        f'{M}{{job="a", reason=~"write_failed|client_gone"}}',
    )


def test_the_rest_of_the_tree_is_compared_by_print_or_cut_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beyond the changed selectors (always checked at their place in the new tree), an
    edit whose new tree prints exactly as intended is accepted on that print; where the
    print would be ambiguous (promql-parser prints values unescaped: here a quote in a
    value) both trees are printed with the changed selectors cut out instead."""
    from errclass.migrate import _expr

    cut: list[object] = []
    real = _expr.skeleton

    def skeleton(printed: str, nodes: list[object]) -> str | None:
        cut.append(printed)
        return real(printed, nodes)

    monkeypatch.setattr(_expr, "skeleton", skeleton)
    r = migrate_expr(f'sum(rate({M}{{job="a", reason="write_failed"}}[5m])) > 1', PRESERVE)
    assert r.changed and cut == []
    quoted = f'sum(rate({M}{{job="a\\"b", reason="write_failed"}}[5m])) > 1'
    r = migrate_expr(quoted, PRESERVE)
    assert r.new_text == quoted.replace('"write_failed"', '~"write_failed|client_gone"')
    assert len(cut) == 2  # the old tree and the new one


def test_a_selector_inside_a_string_is_never_the_one_edited() -> None:
    """A template variable holding a quote must not make the text's strings look
    different from what the parser reads (found by an adversarial review). The selector
    is then found where it is; its print also stands inside the printed string, so the
    trees cannot be compared: the expression is left untouched and reported."""
    text = (
        '{{ \' }} + label_replace(vector(1), "d", '
        f'\'{M}{{reason="write_failed"}}\', "s", "r") + {M}{{reason="write_failed"}}'
    )
    r = migrate_expr(text, PRESERVE)
    assert r.new_text == text and r.edits == []
    [skipped] = r.findings
    assert skipped.status == "skipped" and "changed more than" in skipped.message


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("(" * 1000 + f'{M}{{reason="write_failed"}}' + ")" * 1000, "nested too deeply"),
        ("-" * 1500 + f'{M}{{reason="write_failed"}}', "nested too deeply"),
        (" + ".join(["x"] * 1500 + [f'{M}{{reason="write_failed"}}']), "nested too deeply"),
        ("-" * 9000 + M, "longer than 8,000 characters"),
    ],
    ids=["parentheses", "unary minus", "a long sum", "too long"],
)
def test_deep_expressions_are_reported_never_raised(expr: str, why: str) -> None:
    """Found by an adversarial review: deep trees raised RecursionError, and promql-parser
    overflowed its stack (killing the process) at ~9,000 nested minus signs."""
    r = migrate_expr(expr, PRESERVE)
    assert r.new_text == expr
    [skipped] = r.findings
    assert skipped.status == "skipped" and why in skipped.message
