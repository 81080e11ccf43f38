"""PromQL builders: selectors, the recorded series' names, and the ratios every
artifact shares, so the dashboard, the rules and Grafana's alerts say the same thing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from ._config import Config, seconds


def string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return json.dumps(value, ensure_ascii=False)


def num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def by(labels: Iterable[str]) -> str:
    return ", ".join(labels)


class Queries:
    """Query text for one config. ``inline=True`` spells every ratio out from the raw
    metric (Grafana-managed alerts, which cannot rely on recording rules); otherwise
    alerts read the recorded series."""

    def __init__(self, cfg: Config, *, inline: bool = False) -> None:
        self.cfg, self.inline = cfg, inline
        self.agg = list(cfg.aggregation_labels)
        self.level = "_".join(self.agg)
        self.base = re.sub(r"_total$", "", cfg.metric)

    # -- matchers and selectors ----------------------------------------------------------

    def reason_matcher(self, reasons: Sequence[str], *, negate: bool = False) -> str:
        return self.value_matcher(self.cfg.values(list(reasons)), negate=negate)

    def value_matcher(self, values: Sequence[str], *, negate: bool = False) -> str:
        label = self.cfg.reason_label
        if not values:  # a folded reason: nothing to exclude, nothing to match
            return "" if negate else f'{label}=""'
        if len(values) == 1:
            return f"{label}{'!=' if negate else '='}{string(values[0])}"
        alternation = "|".join(re.escape(v) for v in values)
        return f"{label}{'!~' if negate else '=~'}{string(alternation)}"

    def selector(self, *matchers: str, name: str | None = None) -> str:
        parts = [m for m in (self.cfg.selector if name is None else "", *matchers) if m]
        return (
            f"{name or self.cfg.metric}{{{', '.join(parts)}}}"
            if parts
            else (name or self.cfg.metric)
        )

    def raw_rate(self, window: str, *matchers: str) -> str:
        return f"rate({self.selector(*matchers)}[{window}])"

    # -- recorded series names --------------------------------------------------------------

    def rec_reason_rate(self, w: str) -> str:
        return f"{self.level}_{self.cfg.reason_label}:{self.base}:rate{w}"

    def rec_counted_rate(self, w: str) -> str:
        return f"{self.level}:{self.base}:counted_rate{w}"

    def rec_error_ratio(self, w: str) -> str:
        return f"{self.level}:{self.base}:error_ratio_rate{w}"

    def rec_legacy_rate(self) -> str:
        return f"{self.level}:{self.base}:legacy_write_failed_rate{self.cfg.legacy_window}"

    def rec_legacy_ratio(self) -> str:
        return f"{self.level}:{self.base}:legacy_write_failed_ratio_rate{self.cfg.legacy_window}"

    # SLO meta series (as Sloth publishes them): the objective and the budget as
    # constants labelled slo=<name>, and the budget left over the SLO period.
    def rec_objective(self) -> str:
        return f"{self.base}:slo_objective"

    def rec_budget(self) -> str:
        return f"{self.base}:slo_error_budget"

    def rec_budget_remaining(self) -> str:
        return f"{self.level}:{self.base}:error_budget_remaining"

    def slo_matcher(self) -> str:
        return f"slo={string(self.cfg.name)}"

    def per_budget(self, expr: str) -> str:
        """*expr* (a ratio) divided by the error budget: the burn rate."""
        budget = self.selector(self.slo_matcher(), name=self.rec_budget())
        return f"{expr} / on () group_left () {budget}"

    # -- shared terms (recorded or inline) -------------------------------------------------

    def sum_reasons(self, w: str, reasons: Sequence[str] | None, *, negate: bool = False) -> str:
        """Rate of the outcomes in *reasons* (all when None), summed per aggregation."""
        values = None if reasons is None else self.cfg.values(list(reasons))
        return self.sum_values(w, values, negate=negate)

    def sum_values(self, w: str, values: Sequence[str] | None, *, negate: bool = False) -> str:
        """Rate of the outcomes with these label *values* (all when None), per aggregation."""
        matchers = [] if values is None else [self.value_matcher(values, negate=negate)]
        if self.inline:
            return f"sum by ({by(self.agg)}) ({self.raw_rate(w, *matchers)})"
        return f"sum by ({by(self.agg)}) ({self.selector(*matchers, name=self.rec_reason_rate(w))})"

    def counted(self, w: str) -> str:
        """Outcomes that count for the SLO: everything but the excluded reasons."""
        if not self.inline:
            return self.rec_counted_rate(w)
        return self._counted_expr(w)

    def _counted_expr(self, w: str) -> str:
        if not self.cfg.excluded_reasons:
            return self.sum_reasons(w, None)
        return self.sum_reasons(w, self.cfg.excluded_reasons, negate=True)

    def errors(self, w: str) -> str:
        # `or 0 * counted`: a producer whose error series do not exist yet reads 0, not nothing.
        return f"({self.sum_reasons(w, self.cfg.error_reasons)} or 0 * {self._counted_term(w)})"

    def _counted_term(self, w: str) -> str:
        return self.counted(w) if not self.inline else f"({self._counted_expr(w)})"

    def error_ratio(self, w: str) -> str:
        if not self.inline:
            return self.rec_error_ratio(w)
        return f"({self.errors(w)} / {self._counted_term(w)})"

    def reason_ratio(self, w: str, reason: str, *, of_counted: bool) -> str:
        """Share of *reason* among counted outcomes, or among all outcomes."""
        total = self._counted_term(w) if of_counted else f"({self.sum_reasons(w, None)})"
        return f"({self.sum_reasons(w, [reason])} / {total})"

    # -- definitions of the recorded series --------------------------------------------------

    def record_reason_rate(self, w: str) -> str:
        return f"sum by ({by([*self.agg, self.cfg.reason_label])}) ({self.raw_rate(w)})"

    def record_counted(self, w: str) -> str:
        return self._counted_expr(w)

    def record_error_ratio(self, w: str) -> str:
        return f"{self.errors(w)}\n/\n{self.counted(w)}"

    def record_legacy_rate(self) -> str:
        # `or 0 *`: the old value may have no series at all (never incremented).
        w = self.cfg.legacy_window
        return f"{self.sum_values(w, self.cfg.legacy_values())}\nor 0 * {self.sum_reasons(w, None)}"

    def record_legacy_ratio(self) -> str:
        w = self.cfg.legacy_window
        return f"{self.rec_legacy_rate()}\n/\n{self.sum_reasons(w, None)}"

    def record_budget_remaining(self) -> str:
        return f"1 - {self.per_budget(self.rec_error_ratio(self.cfg.slo.period))}"

    # -- guards ------------------------------------------------------------------------------

    def enough_events(self, w: str, reasons: Sequence[str]) -> str:
        """The low-traffic guard, in events: at least ``alerts.min_events`` outcomes of
        *reasons* over *w*. Written as a rate against n / seconds so that exactly n events
        read exactly n (rate() divides the same way)."""
        n, s = self.cfg.alerts.min_events, seconds(w)
        return f"{self.sum_reasons(w, reasons)} >= ({n} / {num(s)})"


class Consumer:
    """Queries on the consumer side's metric (errclass.fanout's fetch outcomes)."""

    def __init__(self, cfg: Config, *, inline: bool = False) -> None:
        self.cfg, self.c, self.inline = cfg, cfg.consumer, inline
        self.agg = list(self.c.aggregation_labels)
        self.base = re.sub(r"_total$", "", self.c.metric)

    def selector(self, *matchers: str) -> str:
        parts = [m for m in (self.c.selector, *matchers) if m]
        return f"{self.c.metric}{{{', '.join(parts)}}}" if parts else self.c.metric

    def cancelled_matcher(self) -> str:
        return f'{self.c.cancelled_label}="true"'

    def rec_rate(self, w: str) -> str:
        return f"{'_'.join(self.agg)}_{self.c.cancelled_label}:{self.base}:rate{w}"

    def record_rate(self, w: str) -> str:
        labels = by([*self.agg, self.c.cancelled_label])
        return f"sum by ({labels}) (rate({self.selector()}[{w}]))"

    def _sum(self, w: str, *matchers: str) -> str:
        if self.inline:
            return f"sum by ({by(self.agg)}) (rate({self.selector(*matchers)}[{w}]))"
        name = self.rec_rate(w)
        sel = f"{name}{{{', '.join(matchers)}}}" if matchers else name
        return f"sum by ({by(self.agg)}) ({sel})"

    def cancelled_ratio(self, w: str) -> str:
        """The share of a fan-out's fetches that its own side cancelled."""
        return f"({self._sum(w, self.cancelled_matcher())} / {self._sum(w)})"

    def enough_cancelled(self, w: str) -> str:
        n, s = self.cfg.alerts.min_events, seconds(w)
        return f"{self._sum(w, self.cancelled_matcher())} >= ({n} / {num(s)})"
