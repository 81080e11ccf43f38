"""Issue 13, `errclass render`: hostile configs get exit 2 and a message naming the file
and field (no traceback, no hang, nothing written); every config that is accepted
renders rules promtool accepts and dashboards the lint accepts."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from errclass import monitoring
from errclass.monitoring import ConfigError
from errclass.monitoring._queries import Queries
from tests.support import ROOT, errclass_cli, require_tool
from tests.test_render import lint_dashboard

CORPUS = ROOT / "tests" / "fixtures" / "hostile" / "render"
TIMEOUT = 10  # seconds: each one is refused in well under one


def _deep_toml(path: Path) -> None:
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")


def _deep_toml_tables(path: Path) -> None:
    path.write_text("a" + ".a" * 100_000 + " = 1\n")


def _dotted_key(path: Path) -> None:
    path.write_text("[alerts.labels" + ".a" * 3_000 + "]\nb = 1\n")


def _deep_yaml(path: Path) -> None:
    path.write_text("x: " + "[" * 100_000 + "]" * 100_000 + "\n")


def _deep_yaml_block(path: Path) -> None:
    path.write_text("".join(f"{' ' * i}a:\n" for i in range(400)) + " " * 400 + "b: 1\n")


def _alias_bomb(path: Path) -> None:
    # 10 levels of ten aliases each: 10^10 values once expanded, 1 KB of text.
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    lines.append("dashboard: {tags: *l9}")
    path.write_text("\n".join(lines) + "\n")


def _huge_metric(path: Path) -> None:
    path.write_text('metric = "' + "a" * 1_000_000 + '"\n')


def _huge_file(path: Path) -> None:
    path.write_text("# padding\n" * 200_000 + 'name = "x"\n')


GENERATED: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (writer, file suffix, what the message must say)
    "deep-toml": (_deep_toml, ".toml", "nested too deeply"),
    "deep-toml-tables": (_deep_toml_tables, ".toml", "100,000 '.' characters"),
    "deep-toml-dotted": (_dotted_key, ".toml", "nested more than 32 levels deep"),
    "deep-yaml": (_deep_yaml, ".yaml", "nested too deeply"),
    "deep-yaml-block": (_deep_yaml_block, ".yaml", "nested"),
    "alias-bomb": (_alias_bomb, ".yaml", "more than 20,000 values"),
    "huge-metric": (_huge_metric, ".toml", "metric: is 1,000,000 characters long"),
    "huge-file": (_huge_file, ".toml", "bytes"),
}

COMMITTED = {
    "not-utf8.toml": "not UTF-8 at byte",
    "recursive-alias.yaml": "recursive alias",
    "recursive-alias-root.yaml": "recursive alias",
    "lone-surrogate.yaml": "dashboard.title: holds a lone surrogate",
    "runbook-positional.toml": "alerts.runbook_url: unknown placeholder {0}",
    "runbook-format-spec.toml": "alerts.runbook_url: placeholder {alert} must be plain",
    "runbook-empty-field.toml": "alerts.runbook_url: unknown placeholder {}",
    "selector-zero.toml": "selector:",
    "selector-comment.toml": "selector:",
    "selector-offset.toml": "selector:",
    "huge-period.toml": "slo.period:",
    "long-duration-text.toml": "legacy_window:",
}


def render_cli(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp / "out"
    return errclass_cli("render", "--out", str(out), *args, timeout=TIMEOUT, cwd=ROOT), out


def assert_refused(r: subprocess.CompletedProcess[str], out: Path, *names: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for name in names:
        assert name in r.stderr, r.stderr
    assert not out.exists()  # nothing written


def test_the_committed_corpus_is_complete() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(COMMITTED)


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_a_hostile_config_file_is_refused(name: str, tmp_path: Path) -> None:
    path = CORPUS / name
    r, out = render_cli(tmp_path, "--config", str(path))
    assert_refused(r, out, str(path), COMMITTED[name])


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_a_huge_hostile_config_is_refused_fast(name: str, tmp_path: Path) -> None:
    write, suffix, says = GENERATED[name]
    path = tmp_path / f"{name}{suffix}"
    write(path)
    r, out = render_cli(tmp_path, "--config", str(path))
    assert_refused(r, out, str(path), says)


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--selector", 'job="x"} #', "--selector: selector:"),
        ("--selector", "0", "--selector: selector:"),
        ("--period", "99999999999999999999y", "--period: slo.period:"),
        ("--metric", "m" * 5_000, "--metric: metric: is 5,000 characters long"),
        ("--runbook-url", "https://x/{alert!r}", "--runbook-url: alerts.runbook_url:"),
    ],
)
def test_a_hostile_flag_is_refused(flag: str, value: str, says: str, tmp_path: Path) -> None:
    r, out = render_cli(tmp_path, flag, value)
    assert_refused(r, out, says)


BAD_TITLE = ("--dashboard-title", "caf\udce9")


def test_a_flag_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    # argv bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
    out = tmp_path / "out"
    r = errclass_cli("render", "--out", str(out), *BAD_TITLE, timeout=TIMEOUT, cwd=ROOT, text=False)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, err
    assert "Traceback" not in err
    assert "--dashboard-title: dashboard.title: holds a lone surrogate" in err
    assert not out.exists()


def test_a_fifo_config_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    r, out = render_cli(tmp_path, "--config", str(fifo))
    assert_refused(r, out, str(fifo), "not a regular file")


# -- regex metacharacters in reason values: escaped, proved by promtool ------------------------

METACHARACTERS = ["a|b", "c.*", "(x", "y]", "{2}", "back\\slash", 'quo"te', "^$", "+?"]


def test_reason_values_with_regex_metacharacters_match_only_themselves(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    cfg = monitoring.from_mapping(
        {"reasons": {"write_failed": METACHARACTERS}, "legacy_from": METACHARACTERS[0]}
    )
    matcher = Queries(cfg).reason_matcher(["write_failed"])
    decoys = ["a", "b", "cxx", "x", "yy", "backslash", "^$x", "+", ""]
    series = [
        {"series": f"m{{{'reason'}={json.dumps(v)}}}", "values": "1"}
        for v in [*METACHARACTERS, *decoys]
        if v
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": f"count(m{{{matcher}}})",
                        "eval_time": "0m",
                        # the values themselves and none of the decoys, which the
                        # unescaped alternation would match (a, b, cxx, ...)
                        "exp_samples": [{"labels": "{}", "value": len(METACHARACTERS)}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    r = subprocess.run(
        [promtool, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


# -- every accepted config renders valid files ---------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=12)
label_names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: not s.startswith("__") and s != "reason"
)
matcher = st.builds(
    lambda n, op, v: f"{n}{op}{json.dumps(v)}",
    label_names,
    st.sampled_from(["=", "!=", "=~", "!~"]),
    text,
)
selectors = st.one_of(
    st.just(""),
    st.lists(matcher, min_size=1, max_size=3).map(", ".join),
    st.sampled_from(['job="x"} #', "0", 'job="x",', "{}", 'a="b"} or up{c="d"']),
    text,
)
durations = st.builds(
    lambda n, u: f"{n}{u}", st.integers(0, 20_000), st.sampled_from("ywdhms")
) | st.sampled_from(["30d", "4w", "1y", "10y", "11y", "5m"])
configs = st.fixed_dictionaries(
    {},
    optional={
        "metric": st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True),
        "selector": selectors,
        "reasons": st.fixed_dictionaries(
            {},
            optional={
                r: st.lists(text.filter(bool), min_size=1, max_size=3, unique=True)
                for r in ("ok", "client_gone", "deadline_exceeded", "write_failed")
            },
        ),
        "slo": st.fixed_dictionaries(
            {}, optional={"period": durations, "objective": st.floats(0.5, 0.99999)}
        ),
        "legacy_window": durations,
        "alerts": st.fixed_dictionaries(
            {}, optional={"runbook_url": text.map(lambda t: "https://x/" + t)}
        ),
        "dashboard": st.fixed_dictionaries({}, optional={"title": text, "tags": st.lists(text)}),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=configs)
@example(data={"selector": "", "dashboard": {"tags": []}})  # found by hypothesis: no tags
@example(data={"reasons": {"client_gone": ["\x85"]}})  # found by hypothesis: NEL, a YAML break
@example(data={"reasons": {"ok": ["a\u2028b"], "write_failed": ["c\nd\u2029"]}})
def test_every_accepted_config_renders_files_promtool_and_the_lint_accept(
    data: dict[str, object],
) -> None:
    promtool = require_tool("promtool")
    try:
        cfg = monitoring.from_mapping(data)
    except ConfigError as e:
        refused: ConfigError | None = e
    else:
        refused = None
    if refused is not None:
        assert refused.field and refused.message  # refused, naming the field
        return
    files = monitoring.render(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        monitoring.write(files, Path(tmp))
        rules = sorted(Path(tmp, "alerts").glob("*.rules.yaml"))
        assert rules
        r = subprocess.run(
            [promtool, "check", "rules", *map(str, rules)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 0, f"{data!r}\n{r.stdout}{r.stderr}"
        for board in sorted(Path(tmp, "grafana").rglob("*.json")):
            assert lint_dashboard(json.loads(board.read_text())) == [], (data, board)


@settings(max_examples=300, deadline=None)
@given(value=st.text(st.characters(codec="utf-8"), max_size=30))
@example(value="a|\x85")  # NEL: PyYAML wrote it raw and read it back as other text
@example(value="x\ny\u2028z\u2029")
def test_every_rendered_yaml_string_reads_back_as_written(value: str) -> None:
    from errclass.monitoring import _yaml

    text = _yaml({"expr": value, "list": [value]})
    assert yaml.safe_load(text) == {"expr": value, "list": [value]}
