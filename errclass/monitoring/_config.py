"""The render config: one object drives every query, rule and panel (like a mixin's
``_config``). Loaded from TOML, YAML, a mapping or flags; every error names the field
and where it came from."""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _limits

REASONS = ("ok", "client_gone", "deadline_exceeded", "write_failed")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_PREFIX = re.compile(r"[A-Z][A-Za-z0-9]*")
_UID = re.compile(r"[A-Za-z0-9_-]{8,40}")
_SEVERITY = re.compile(r"[a-z][a-z0-9_]*")
_RUNBOOK_FIELDS = {"alert", "alert_lower", "rule", "rule_lower", "name"}
# Keys that were replaced: loading one says what to use instead.
_REPLACED: dict[tuple[str | int, ...], str] = {
    ("alerts", "min_rate"): "was replaced by alerts.min_events: a minimum count of failed "
    "outcomes in the alert's long window (a rate over the window blocked every page at the "
    "seed's volume)",
    ("legacy_reasons",): "was replaced by legacy_from and legacy_split: label values, as "
    "`errclass migrate --from/--split` take them",
}

Path_ = tuple[str | int, ...]


class ConfigError(ValueError):
    """A bad config value: ``where`` (file:line:col or a flag), ``field`` and why."""

    def __init__(self, field: str, message: str, where: str = "") -> None:
        self.field, self.message, self.where = field, message, where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{field}: {message}")


@dataclass(frozen=True)
class BurnRate:
    """One multi-window burn-rate alert: fires when both windows burn > ``factor``."""

    long: str
    short: str
    factor: float
    severity: str
    for_: str = field(default="0s", metadata={"key": "for"})


@dataclass(frozen=True)
class SLO:
    objective: float = 0.999
    period: str = "30d"


@dataclass(frozen=True)
class RatioAlert:
    """A symptom alert on the share of one reason, with its own threshold."""

    threshold: float
    window: str
    severity: str
    for_: str = field(default="10m", metadata={"key": "for"})


@dataclass(frozen=True)
class AbsentAlert:
    severity: str = "warning"
    for_: str = field(default="15m", metadata={"key": "for"})
    # A job (aggregation) seen within this long but not now is reported by name.
    lookback: str = "1h"


@dataclass(frozen=True)
class Consumer:
    """The consumer side: errclass.fanout's ``errclass_fetch_outcomes_total{fanout, reason,
    cancelled}``; ``cancelled="true"`` marks fetches our own side cut (a cascade)."""

    enabled: bool = True
    metric: str = "errclass_fetch_outcomes_total"
    selector: str = ""
    fanout_label: str = "fanout"
    cancelled_label: str = "cancelled"
    aggregation_labels: tuple[str, ...] = ("job", "fanout")
    # The alert: more than this share of a fan-out's fetches cancelled by itself.
    cancelled: RatioAlert = RatioAlert(threshold=0.1, window="15m", severity="warning", for_="15m")


@dataclass(frozen=True)
class Alerts:
    prefix: str = "Errclass"
    # The low-traffic guard, in events: an alert needs at least this many outcomes of its
    # reasons (failed ones for the burn rates) in its long window, so one failure at 3
    # requests a minute never pages, while a total outage at 82 counted outcomes an hour
    # pages within a minute of the workbook's 52 s.
    min_events: int = 2
    # {rule_lower}: the alert name without the prefix, so the anchor exists in errclass's
    # own runbook whatever the prefix; every render also writes alerts/RUNBOOK.md.
    runbook_url: str = (
        "https://github.com/errclass/errclass/blob/main/alerts/RUNBOOK.md#{rule_lower}"
    )
    labels: dict[str, str] = field(default_factory=dict)
    deadline: RatioAlert = RatioAlert(threshold=0.05, window="5m", severity="warning", for_="10m")
    client_gone: RatioAlert = RatioAlert(
        threshold=0.5, window="15m", severity="warning", for_="15m"
    )
    absent: AbsentAlert = AbsentAlert()


@dataclass(frozen=True)
class Dashboard:
    uid: str = "errclass-outcomes"
    title: str = "errclass / streaming outcomes"
    tags: tuple[str, ...] = ("errclass",)
    refresh: str = "30s"
    time_from: str = "now-6h"


@dataclass(frozen=True)
class PrometheusRule:
    """``metadata`` of the PrometheusRule resource; ``labels`` must match the
    operator's ``ruleSelector`` (kube-prometheus-stack: ``release``)."""

    namespace: str = ""
    labels: dict[str, str] = field(
        default_factory=lambda: {"release": "kube-prometheus-stack", "role": "alert-rules"}
    )


@dataclass(frozen=True)
class GrafanaAlerting:
    folder: str = "errclass"
    datasource_uid: str = "prometheus"
    interval: str = "1m"
    org_id: int = 1


def _default_burn_rates() -> tuple[BurnRate, ...]:
    # The SRE workbook's table (30-day objective); Pyrra's `for` durations.
    return (
        BurnRate("1h", "5m", 14.4, "critical", "2m"),
        BurnRate("6h", "30m", 6.0, "critical", "15m"),
        BurnRate("1d", "2h", 3.0, "warning", "1h"),
        BurnRate("3d", "6h", 1.0, "warning", "3h"),
    )


def _default_reasons() -> dict[str, tuple[str, ...]]:
    return {r: (r,) for r in REASONS}


@dataclass(frozen=True)
class Config:
    """Everything ``errclass render`` needs; the defaults render the default metric
    ``errclass_outcomes_total{producer, reason}``."""

    name: str = "errclass"
    metric: str = "errclass_outcomes_total"
    reason_label: str = "reason"
    # The label value(s) of each reason; a reason may span several values.
    reasons: dict[str, tuple[str, ...]] = field(default_factory=_default_reasons)
    producer_label: str = "producer"
    selector: str = ""
    aggregation_labels: tuple[str, ...] = ("job", "producer")
    error_reasons: tuple[str, ...] = ("write_failed", "deadline_exceeded")
    excluded_reasons: tuple[str, ...] = ("client_gone",)
    # The legacy-equivalent series, from label values as `errclass migrate --mode
    # preserve` builds it: the old value plus the values split off it. An empty
    # legacy_split means the values of client_gone and deadline_exceeded.
    legacy_from: str = "write_failed"
    legacy_split: tuple[str, ...] = ()
    legacy_window: str = "5m"
    slo: SLO = SLO()
    burn_rates: tuple[BurnRate, ...] = field(default_factory=_default_burn_rates)
    alerts: Alerts = Alerts()
    dashboard: Dashboard = Dashboard()
    prometheus_rule: PrometheusRule = PrometheusRule()
    mimir_namespace: str = "errclass"
    grafana_alerting: GrafanaAlerting = GrafanaAlerting()
    rule_interval: str = ""
    # Windows of 1d and longer are recorded in their own group at this interval (as Pyrra
    # does): a 30d rate need not be recomputed every evaluation. Under 5m, so the
    # recorded series never go stale.
    long_window_interval: str = "2m30s"
    consumer: Consumer = Consumer()

    @property
    def budget(self) -> float:
        return round(1.0 - self.slo.objective, 12)

    def values(self, reasons: tuple[str, ...] | list[str]) -> list[str]:
        """The label values of *reasons*, in config order."""
        return [v for r in reasons for v in self.reasons[r]]

    def legacy_values(self) -> list[str]:
        """The label values the old metric counted as ``legacy_from``."""
        split = self.legacy_split or self.values(["client_gone", "deadline_exceeded"])
        return [self.legacy_from, *(v for v in split if v != self.legacy_from)]

    def has(self, reason: str) -> bool:
        """Whether the metric has a value of its own for *reason* (a deadline may be
        folded into client_gone)."""
        return bool(self.reasons[reason])


# -- loading ----------------------------------------------------------------------------

Locate = Callable[[Path_], str]


def load(path: str | Path, overrides: Mapping[str, tuple[Any, str]] | None = None) -> Config:
    """Load a TOML or YAML file; *overrides* maps a dotted key to ``(value, flag)``."""
    p = Path(path)
    text = _read(p)
    suffix = p.suffix.lower()
    if suffix == ".toml":
        data, positions = _parse_toml(text, str(p))
    elif suffix in (".yaml", ".yml"):
        data, positions = _parse_yaml(text, str(p))
    else:
        raise ConfigError("--config", f"{p}: use a .toml, .yaml or .yml file")
    return from_mapping(data, source=str(p), positions=positions, overrides=overrides)


def _read(p: Path) -> str:
    """The text of config file *p*: a regular file, at most MAX_FILE_BYTES, UTF-8."""
    if p.exists() and not p.is_file():  # a FIFO would block open() itself
        raise ConfigError("--config", f"{p} is not a regular file")
    try:
        with p.open("rb") as f:
            data = f.read(_limits.MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError("--config", f"cannot read {p}: {e.strerror or e}") from None
    if len(data) > _limits.MAX_FILE_BYTES:
        raise ConfigError("--config", f"{p} is over {_limits.MAX_FILE_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError("config", f"not UTF-8 at byte {e.start}", str(p)) from None


def _check_limits(
    data: Mapping[str, Any],
    overrides: Mapping[str, tuple[Any, str]],
    source: str,
    positions: Mapping[Path_, tuple[int, int]],
) -> None:
    """Bounds first (size, depth, recursion, string length, text), before anything that
    copies, recurses or matches regexes over the data."""
    try:
        _limits.check_data(data)
    except _limits.LimitError as e:
        at = next(
            (positions[e.path[:n]] for n in range(len(e.path), 0, -1) if e.path[:n] in positions),
            None,
        )
        where = f"{source}:{at[0]}:{at[1]}" if at else source
        raise ConfigError(_dotted(e.path), e.message, where) from None
    for dotted, (value, flag) in overrides.items():
        try:
            _limits.check_data(value, tuple(dotted.split(".")))
        except _limits.LimitError as e:
            raise ConfigError(_dotted(e.path), e.message, flag) from None


def from_mapping(
    data: Mapping[str, Any] | None = None,
    *,
    source: str = "",
    positions: Mapping[Path_, tuple[int, int]] | None = None,
    overrides: Mapping[str, tuple[Any, str]] | None = None,
) -> Config:
    """Build and validate a Config from plain data (the parsed file)."""
    _check_limits(data or {}, overrides or {}, source, positions or {})
    data = copy.deepcopy(dict(data or {}))
    flags: dict[Path_, str] = {}
    for dotted, (value, flag) in (overrides or {}).items():
        keys = dotted.split(".")
        node = data
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
        flags[tuple(keys)] = flag
    if isinstance(data.get("reasons"), Mapping):  # a partial table keeps the other reasons
        data["reasons"] = {**_default_reasons(), **data["reasons"]}
    pos = dict(positions or {})

    def locate(path: Path_) -> str:
        for n in range(len(path), -1, -1):
            if path[:n] in flags:
                return flags[path[:n]]
            if path[:n] in pos and n:
                line, col = pos[path[:n]]
                return f"{source}:{line}:{col}"
        return source

    cfg: Config = _build(Config, data, (), locate)
    _validate(cfg, locate)
    return cfg


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "config"


def _fail(path: Path_, message: str, locate: Locate) -> typing.NoReturn:
    raise ConfigError(_dotted(path), message, locate(path))


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def _build(cls: type[Any], data: Any, path: Path_, locate: Locate) -> Any:
    if not isinstance(data, Mapping):
        _fail(path, f"must be a table, got {_kind(data)}", locate)
    hints = typing.get_type_hints(cls)
    fields = {_key(f): f for f in dataclasses.fields(cls)}
    for key in data:
        here: Path_ = (*path, str(key))
        if here in _REPLACED:
            _fail(here, _REPLACED[here], locate)
        if key not in fields:
            known = ", ".join(sorted(fields))
            _fail((*path, str(key)), f"unknown key (known keys: {known})", locate)
    kwargs: dict[str, Any] = {}
    for key, f in fields.items():
        if key in data:
            kwargs[f.name] = _convert(hints[f.name], data[key], (*path, key), locate, f)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            _fail((*path, key), "is required", locate)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, path: Path_, locate: Locate, f: Any = None) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if f is not None and dataclasses.is_dataclass(f.default) and isinstance(value, Mapping):
            # A partial table keeps the defaults of the keys it leaves out.
            value = {**_undefault(tp, f.default), **value}
        return _build(tp, value, path, locate)
    if tp in _SCALARS:
        ok, what = _SCALARS[tp]
        if not ok(value):
            _fail(path, f"must be {what}, got {_kind(value)}", locate)
        return float(value) if tp is float else value
    if origin is tuple:
        return _convert_tuple(typing.get_args(tp)[0], value, path, locate)
    if origin is dict:
        return _convert_dict(typing.get_args(tp)[1], value, path, locate)
    raise TypeError(f"unsupported config type {tp!r}")  # pragma: no cover


# Scalar types: whether a value is one, and what the error says it must be.
_SCALARS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    str: (lambda v: isinstance(v, str), "a string"),
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
}


def _convert_tuple(item: Any, value: Any, path: Path_, locate: Locate) -> tuple[Any, ...]:
    if isinstance(value, str) and item is str and path[-1] == "tags":
        value = [value]
    if not isinstance(value, list | tuple):
        _fail(path, f"must be a list, got {_kind(value)}", locate)
    return tuple(_convert(item, v, (*path, i), locate) for i, v in enumerate(value))


def _convert_dict(vt: Any, value: Any, path: Path_, locate: Locate) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"must be a table, got {_kind(value)}", locate)
    out = {}
    for k, v in value.items():
        item = [v] if vt is not str and isinstance(v, str) else v  # one label value
        out[str(k)] = _convert(vt, item, (*path, str(k)), locate)
    return out


def _undefault(tp: type[Any], default: Any) -> dict[str, Any]:
    """The fields of a default nested dataclass as raw data, for partial overrides."""
    out: dict[str, Any] = {}
    for g in dataclasses.fields(tp):
        v = getattr(default, g.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            v = _undefault(type(v), v)
        elif isinstance(v, tuple) and v and dataclasses.is_dataclass(v[0]):
            v = [_undefault(type(x), x) for x in v]
        out[_key(g)] = v
    return out


def _kind(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    for t, n in names.items():
        if type(value) is t:
            return f"{n} ({value!r})"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return "nothing" if value is None else type(value).__name__


# -- validation ---------------------------------------------------------------------------


def seconds(duration: str) -> float:
    m = _DURATION.fullmatch(duration)
    if not duration or m is None:
        raise ValueError(duration)
    return sum(int(g) * u for g, u in zip(m.groups(), _DURATION_UNITS, strict=True) if g)


class _Checker:
    def __init__(self, locate: Locate) -> None:
        self.locate = locate

    def __call__(self, ok: bool, path: Path_, message: str) -> None:
        if not ok:
            _fail(path, message, self.locate)

    def label(self, name: str, path: Path_) -> None:
        self(
            bool(_LABEL.fullmatch(name)) and not name.startswith("__"),
            path,
            f"{name!r} is not a label name PromQL accepts ([a-zA-Z_][a-zA-Z0-9_]*, no __ prefix)",
        )

    def duration(self, value: str, path: Path_, *, zero: bool = False) -> float:
        try:
            if _limits.check_duration_text(value):
                raise ValueError(value)
            s = seconds(value)
        except ValueError:
            why = f"{value[:40]!r} is not a Prometheus duration like 5m, 1h or 30d"
            _fail(path, why, self.locate)
        self(zero or s > 0, path, "must be longer than 0s")
        self(s <= _limits.MAX_DURATION_S, path, "must be at most 10y")
        return s

    def severity(self, value: str, path: Path_) -> None:
        self(bool(_SEVERITY.fullmatch(value)), path, f"{value!r} is not a severity like warning")


def _validate(cfg: Config, locate: Locate) -> None:
    check = _Checker(locate)
    _check_names(cfg, check)
    _check_reasons(cfg, check)
    _check_selector(cfg, check)
    _check_slo(cfg, check)
    _check_alerts(cfg, check)
    check(
        bool(_UID.fullmatch(cfg.dashboard.uid)),
        ("dashboard", "uid"),
        "must be 8-40 of [A-Za-z0-9_-]",
    )
    check(bool(cfg.dashboard.title.strip()), ("dashboard", "title"), "must not be empty")
    for k in cfg.prometheus_rule.labels:
        check.label(k, ("prometheus_rule", "labels", k))
    check.duration(cfg.grafana_alerting.interval, ("grafana_alerting", "interval"))
    if cfg.rule_interval:
        check.duration(cfg.rule_interval, ("rule_interval",))
    slow = check.duration(cfg.long_window_interval, ("long_window_interval",))
    check(slow < 300, ("long_window_interval",), "must be under 5m, or its series go stale")
    _check_consumer(cfg, check)


def _check_names(cfg: Config, check: _Checker) -> None:
    check(bool(_NAME.fullmatch(cfg.name)), ("name",), "must be lowercase letters, digits and -")
    check(bool(_METRIC.fullmatch(cfg.metric)), ("metric",), f"{cfg.metric!r} is not a metric name")
    check.label(cfg.reason_label, ("reason_label",))
    if cfg.producer_label:
        check.label(cfg.producer_label, ("producer_label",))
    check(bool(cfg.aggregation_labels), ("aggregation_labels",), "needs at least one label")
    for i, name in enumerate(cfg.aggregation_labels):
        check.label(name, ("aggregation_labels", i))
        check(
            name != cfg.reason_label,
            ("aggregation_labels", i),
            "must not be the reason label (rules add it)",
        )
    check(
        len(set(cfg.aggregation_labels)) == len(cfg.aggregation_labels),
        ("aggregation_labels",),
        "has duplicates",
    )


def _check_slo(cfg: Config, check: _Checker) -> None:
    check(
        0.0 < cfg.slo.objective < 1.0,
        ("slo", "objective"),
        f"{cfg.slo.objective} is impossible: an objective is a ratio strictly between 0 and 1 "
        "(e.g. 0.999)",
    )
    period = check.duration(cfg.slo.period, ("slo", "period"))
    check.duration(cfg.legacy_window, ("legacy_window",))
    check(bool(cfg.burn_rates), ("burn_rates",), "needs at least one window pair")
    for i, b in enumerate(cfg.burn_rates):
        long = check.duration(b.long, ("burn_rates", i, "long"))
        short = check.duration(b.short, ("burn_rates", i, "short"))
        check(short < long, ("burn_rates", i, "short"), "must be shorter than long")
        check(long <= period, ("burn_rates", i, "long"), "must not exceed slo.period")
        check(b.factor > 0, ("burn_rates", i, "factor"), "must be positive")
        check(
            b.factor * cfg.budget < 1.0,
            ("burn_rates", i, "factor"),
            f"{b.factor} x error budget {cfg.budget:g} >= 1: an error ratio can never exceed it",
        )
        check.duration(b.for_, ("burn_rates", i, "for"), zero=True)
        check.severity(b.severity, ("burn_rates", i, "severity"))
    pairs = [(b.long, b.short) for b in cfg.burn_rates]
    check(len(set(pairs)) == len(pairs), ("burn_rates",), "has the same window pair twice")


def _check_alerts(cfg: Config, check: _Checker) -> None:
    a = cfg.alerts
    check(
        bool(_PREFIX.fullmatch(a.prefix)), ("alerts", "prefix"), "must be CamelCase, e.g. Errclass"
    )
    check(a.min_events >= 1, ("alerts", "min_events"), "must be at least 1")
    check.duration(a.absent.lookback, ("alerts", "absent", "lookback"))
    for key in ("deadline", "client_gone"):
        r: RatioAlert = getattr(a, key)
        check(0 < r.threshold < 1, ("alerts", key, "threshold"), "must be a ratio between 0 and 1")
        check.duration(r.window, ("alerts", key, "window"))
        check.duration(r.for_, ("alerts", key, "for"), zero=True)
        check.severity(r.severity, ("alerts", key, "severity"))
    check.duration(a.absent.for_, ("alerts", "absent", "for"), zero=True)
    check.severity(a.absent.severity, ("alerts", "absent", "severity"))
    for k in a.labels:
        check.label(k, ("alerts", "labels", k))
    problem = _limits.template_problem(a.runbook_url, _RUNBOOK_FIELDS)
    check(problem is None, ("alerts", "runbook_url"), problem or "")


def _check_reasons(cfg: Config, check: _Checker) -> None:
    for r in REASONS:
        check(r in cfg.reasons, ("reasons",), f"needs label values for {r!r}")
    seen: dict[str, str] = {}
    for r, values in cfg.reasons.items():
        check(r in REASONS, ("reasons", r), f"unknown reason; use one of {', '.join(REASONS)}")
        check(
            bool(values) or r == "deadline_exceeded",
            ("reasons", r),
            "needs at least one label value (only deadline_exceeded may be [], when the "
            "metric folds deadlines into client_gone)",
        )
        for i, v in enumerate(values):
            check(bool(v), ("reasons", r, i), "must not be empty")
            check(v not in seen, ("reasons", r, i), f"{v!r} is already a value of {seen.get(v)!r}")
            seen[v] = r
    for key in ("error_reasons", "excluded_reasons"):
        for i, r in enumerate(getattr(cfg, key)):
            check(r in REASONS, (key, i), f"{r!r} is not a reason ({', '.join(REASONS)})")
            check(r != "ok", (key, i), "ok is never an error")
    check(
        bool(cfg.values(cfg.error_reasons)),
        ("error_reasons",),
        "needs at least one reason with a label value",
    )
    check(bool(cfg.legacy_from), ("legacy_from",), "must not be empty")
    for i, v in enumerate(cfg.legacy_split):
        check(bool(v), ("legacy_split", i), "must not be empty")
        check(v != cfg.legacy_from, ("legacy_split", i), "must differ from legacy_from")
    known = set(cfg.values(list(cfg.reasons)))
    for path, v in [(("legacy_from",), cfg.legacy_from)] + [
        (("legacy_split", i), v) for i, v in enumerate(cfg.legacy_split)
    ]:
        check(v in known, path, f"{v!r} is not a label value of any reason")
    both = set(cfg.error_reasons) & set(cfg.excluded_reasons)
    check(not both, ("excluded_reasons",), f"{sorted(both)} cannot be both an error and excluded")


def _check_selector(cfg: Config, check: _Checker) -> None:
    _check_matchers(cfg.metric, cfg.selector, cfg.reason_label, ("selector",), check)


def _check_matchers(
    metric: str, selector: str, reason_label: str, path: Path_, check: _Checker
) -> None:
    if not selector:
        return
    import promql_parser

    try:
        expr: Any = promql_parser.parse(f"{metric}{{{selector}}}")
        names = [m.name for m in expr.matchers.matchers]
    except (ValueError, AttributeError) as e:
        check(False, path, f"{selector!r} is not a PromQL matcher list: {e}")
        return
    problem = _limits.matcher_list_problem(metric, selector, promql_parser.parse)
    if problem is not None:
        check(False, path, problem)
        return
    check(reason_label not in names, path, f"must not match on the reason label {reason_label!r}")


def _check_consumer(cfg: Config, check: _Checker) -> None:
    c = cfg.consumer
    check(
        bool(_METRIC.fullmatch(c.metric)),
        ("consumer", "metric"),
        f"{c.metric!r} is not a metric name",
    )
    for key in ("fanout_label", "cancelled_label"):
        check.label(getattr(c, key), ("consumer", key))
    check(
        bool(c.aggregation_labels), ("consumer", "aggregation_labels"), "needs at least one label"
    )
    for i, name in enumerate(c.aggregation_labels):
        check.label(name, ("consumer", "aggregation_labels", i))
    _check_matchers(c.metric, c.selector, "reason", ("consumer", "selector"), check)
    r = c.cancelled
    path: Path_ = ("consumer", "cancelled")
    check(0 < r.threshold < 1, (*path, "threshold"), "must be a ratio between 0 and 1")
    check.duration(r.window, (*path, "window"))
    check.duration(r.for_, (*path, "for"), zero=True)
    check.severity(r.severity, (*path, "severity"))


# -- file parsing with positions ------------------------------------------------------------


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, tuple[int, int]]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _limits.check_yaml_nodes(node)  # no recursive alias, no alias bomb
        data = None if node is None else yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError("config", f"invalid YAML: {getattr(e, 'problem', e)}", where) from None
    except RecursionError:
        raise ConfigError("config", "invalid YAML: nested too deeply", source) from None
    except _limits.LimitError as e:
        where = f"{source}:{e.mark[0]}:{e.mark[1]}" if e.mark else source
        raise ConfigError("config", e.message, where) from None
    positions: dict[Path_, tuple[int, int]] = {}

    def walk(n: Any, path: Path_) -> None:
        positions[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*path, str(k.value))
                walk(v, key)
                positions[key] = (k.start_mark.line + 1, k.start_mark.column + 1)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*path, i))

    if node is not None:
        walk(node, ())
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"must be a mapping, got {_kind(data)}", f"{source}:1:1")
    return data, positions


_TOML_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(
    r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _toml_keys(dotted: str) -> list[str]:
    return [
        k.strip().strip("\"'") for k in re.split(r"\.(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", dotted)
    ]


def _parse_toml(text: str, source: str) -> tuple[Any, dict[Path_, tuple[int, int]]]:
    import tomllib

    if problem := _limits.toml_problem(text):
        raise ConfigError("config", problem, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        where = f"{source}:{m.group(1)}:{m.group(2)}" if m else source
        raise ConfigError("config", f"invalid TOML: {e}", where) from None
    except RecursionError:
        raise ConfigError("config", "invalid TOML: nested too deeply", source) from None
    # tomllib keeps no positions: find headers and `key =` lines (best effort; an
    # error inside an inline table points at the table's key).
    positions: dict[Path_, tuple[int, int]] = {}
    table: Path_ = ()
    arrays: dict[tuple[str, ...], int] = {}
    depth = 0  # inside a multi-line array or string: not a key line
    for n, line in enumerate(text.splitlines(), 1):
        if depth == 0 and (h := _TOML_HEADER.match(line)):
            keys = tuple(_toml_keys(h.group(2)))
            if h.group(1) == "[[":
                arrays[keys] = arrays.get(keys, -1) + 1
                table = (*keys, arrays[keys])
            else:
                table = keys
            positions.setdefault(table, (n, line.index("[") + 1))
            continue
        if depth == 0 and (k := _TOML_KEY.match(line)):
            path = (*table, *_toml_keys(k.group(1)))
            positions.setdefault(path, (n, len(line) - len(line.lstrip()) + 1))
        depth = max(0, depth + line.count("[") - line.count("]")) if "=" in line or depth else 0
    return data, positions


def to_data(cfg: Config) -> dict[str, Any]:
    """The config as plain data (TOML/YAML keys), e.g. to print the defaults."""

    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return dict(plain(_undefault(Config, cfg)))
