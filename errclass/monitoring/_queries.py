"""PromQL builders: selectors, the recorded series' names, and the ratios every
artifact shares, so the dashboard, the rules and Grafana's alerts say the same thing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from ._config import Config


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
        values = self.cfg.values(list(reasons))
        label = self.cfg.reason_label
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

    # -- shared terms (recorded or inline) -------------------------------------------------

    def sum_reasons(self, w: str, reasons: Sequence[str] | None, *, negate: bool = False) -> str:
        """Rate of the outcomes in *reasons* (all when None), summed per aggregation."""
        matchers = [] if reasons is None else [self.reason_matcher(reasons, negate=negate)]
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
        return self.sum_reasons(self.cfg.legacy_window, self.cfg.legacy_reasons)

    def record_legacy_ratio(self) -> str:
        w = self.cfg.legacy_window
        return f"{self.rec_legacy_rate()}\n/\n{self.sum_reasons(w, None)}"

    # -- guards ------------------------------------------------------------------------------

    def enough_traffic(self, w: str, *, counted: bool = True) -> str:
        """The low-traffic guard: enough (counted, or all) outcomes per second over *w*."""
        rate = self._counted_term(w) if counted else f"({self.sum_reasons(w, None)})"
        return f"{rate} >= {num(self.cfg.alerts.min_rate)}"
