"""Issue 15 item 1: no one-sided edit of a ratio of two different metrics.

Intended behaviour, per ratio shape (``x`` is a histogram or summary whose series carry
the reason label; "selected" means named by ``--metric``):

* ``x_sum / x_count`` (a mean) with only ``x_count`` selected: editing the denominator
  alone divides the time of every request by the count of some of them. Neither mode
  edits it: a ``manual`` finding says why and offers the sibling edit: select the
  family (``--metric x`` selects ``x_sum``, ``x_count`` and ``x_bucket``).
* The same mean with the family selected: both sides get the same edit.
* ``a_total / b_total``, two different metrics with only one selected: ``manual``,
  untouched (the tool cannot know whether ``a_total`` counts the split values).
  Both selected: both sides edited, as for one metric on both sides.
* ``histogram_quantile(q, ... x_bucket{...} ...)``: one selector, no ratio: its
  matchers are planned like any selector's (split mode adds the exclusion to a
  ``reason!="ok"`` bucket selector; a quantile over every outcome is unchanged by
  the split and left alone).
* Preserve mode keeps each selector's meaning, so a mean is safe there unless the
  unselected side has its own matcher on the reason label (it is split too, and
  would lose the split values): then ``manual`` as well.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from errclass._cli import main
from errclass.migrate import Selection, migrate_expr, plan_paths

REAL = Path(__file__).parent / "fixtures" / "migrate-real"
X = "stream_duration_seconds"
MEAN = f"sum(rate({X}_sum[1m])) by (job) / sum(rate({X}_count[1m])) by (job)"


def _statuses(r: object) -> list[str]:
    return [f.status for f in r.findings]  # type: ignore[attr-defined]


def test_a_mean_is_not_edited_on_one_side_and_the_sibling_is_offered() -> None:
    r = migrate_expr(MEAN, Selection((f"{X}_count",), mode="split"))
    assert r.new_text == MEAN
    assert not r.edits
    [f] = r.findings
    assert f.status == "manual"
    assert f"{X}_sum" in f.message
    assert f"--metric {X}" in f.message  # the sibling edit, offered


def test_a_mean_with_the_family_selected_is_edited_on_both_sides() -> None:
    r = migrate_expr(MEAN, Selection((X,), mode="split"))
    assert r.new_text == (
        f'sum(rate({X}_sum{{reason!="client_gone"}}[1m])) by (job) / '
        f'sum(rate({X}_count{{reason!="client_gone"}}[1m])) by (job)'
    )
    assert _statuses(r) == ["changed", "changed"]


def test_a_ratio_of_two_metrics_with_one_selected_is_manual() -> None:
    text = "sum(rate(errors_total[5m])) / sum(rate(stream_outcomes_total[5m]))"
    r = migrate_expr(text, Selection(("stream_outcomes_total",), mode="split"))
    assert r.new_text == text
    assert _statuses(r) == ["manual"]
    assert "errors_total" in r.findings[0].message
    # the numerator side alone, too
    text = 'sum(rate(stream_outcomes_total{reason!="ok"}[5m])) / sum(rate(requests_total[5m]))'
    r = migrate_expr(text, Selection(("stream_outcomes_total",), mode="split"))
    assert r.new_text == text
    assert _statuses(r) == ["manual"]


def test_a_ratio_of_two_selected_metrics_is_edited_on_both_sides() -> None:
    text = "sum(rate(a_total[5m])) / sum(rate(b_total[5m]))"
    r = migrate_expr(text, Selection(("a_total", "b_total"), mode="split"))
    assert r.new_text == (
        'sum(rate(a_total{reason!="client_gone"}[5m])) / '
        'sum(rate(b_total{reason!="client_gone"}[5m]))'
    )


def test_a_number_on_the_other_side_is_no_other_metric() -> None:
    text = 'sum(rate(stream_outcomes_total{reason!="ok"}[5m])) / 60'
    r = migrate_expr(text, Selection(("stream_outcomes_total",), mode="split"))
    assert r.new_text == (
        'sum(rate(stream_outcomes_total{reason!="ok", reason!="client_gone"}[5m])) / 60'
    )


@pytest.mark.parametrize("metric", [X, f"{X}_bucket"])
def test_histogram_quantile_over_buckets(metric: str) -> None:
    sel = Selection((metric,), mode="split")
    text = f'histogram_quantile(0.99, sum(rate({X}_bucket{{reason!="ok"}}[1m])) by (le))'
    r = migrate_expr(text, sel)
    assert r.new_text == (
        f'histogram_quantile(0.99, sum(rate({X}_bucket{{reason!="ok", '
        f'reason!="client_gone"}}[1m])) by (le))'
    )
    every = f"histogram_quantile(0.5, sum(rate({X}_bucket[1m])) by (le))"
    r = migrate_expr(every, sel)
    assert r.new_text == every
    assert not r.findings


def test_preserve_mode_a_mean_with_the_reason_on_the_unselected_side_is_manual() -> None:
    text = (
        f'sum(rate({X}_sum{{reason="write_failed"}}[1m])) / '
        f'sum(rate({X}_count{{reason="write_failed"}}[1m]))'
    )
    r = migrate_expr(text, Selection((f"{X}_count",), mode="preserve"))
    assert r.new_text == text
    assert "manual" in _statuses(r)
    r = migrate_expr(text, Selection((X,), mode="preserve"))
    assert r.new_text == text.replace('"write_failed"', '~"write_failed|client_gone"')


def test_preserve_mode_a_mean_over_every_reason_is_edited_as_usual() -> None:
    text = f'sum(rate({X}_sum[1m])) / sum(rate({X}_count{{reason="write_failed"}}[1m]))'
    r = migrate_expr(text, Selection((f"{X}_count",), mode="preserve"))
    assert r.new_text == text.replace('"write_failed"', '~"write_failed|client_gone"')


def test_the_mimir_avg_rule_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = REAL / "histogram-mean.yaml"
    [r] = plan_paths([path], Selection((f"{X}_count",), mode="split"))
    mean = [ln for ln in r.new_text.splitlines() if "_sum[1m]" in ln]
    assert mean == [ln for ln in r.text.splitlines() if "_sum[1m]" in ln]  # not one-sided
    assert r.changed  # the count alone, no ratio, is edited as usual
    assert main(["check", str(path), "--metric", f"{X}_count"]) == 1
    out = capsys.readouterr().out
    assert "manual" in out
    assert "exclude it from both sides" not in out
    [r] = plan_paths([path], Selection((X,), mode="split"))
    lines = [ln for ln in r.new_text.splitlines() if "expr:" in ln]
    assert lines[0].count('reason!="client_gone"') == 2  # the mean, both sides
    assert 'reason!="ok", reason!="client_gone"' in lines[1]
    assert "client_gone" not in lines[2]  # a quantile of every outcome
    assert 'reason!="ok", reason!="client_gone"' in lines[3]
