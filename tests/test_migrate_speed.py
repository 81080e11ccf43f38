"""Issue 15 item 7: the fast paths of ``errclass migrate``. Each is checked twice: that
it is taken where it should be, and that it gives exactly what the slow path gives."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from errclass.migrate import _composer
from errclass.migrate._composer import NodeError, check_nodes, composer
from errclass.migrate._documents import DocumentError, load

# --- YAML without anchors: duplicate keys only ---------------------------------------


def _outcome(text: str, *, aliases: bool) -> tuple[str, int, int] | None:
    roots = [d for d in yaml.compose_all(text, Loader=composer()) if d is not None]
    try:
        check_nodes(roots, aliases=aliases)
    except NodeError as e:
        return (str(e), e.line, e.column)
    return None


ANCHOR_FREE = [
    "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: up\n",
    "a: 1\nb: 2\na: 3\n",
    "x:\n  - y: 1\n    z: {q: 1, q: 2}\n",
    "? [a, b]\n: 1\n? {k: 1, k: 2}\n: 2\n",  # a duplicate inside a key that is a mapping
    "? [a]\n: 1\n? [a]\n: 2\nc: 1\nc: 2\n",
    "m:\n  <<: {a: 1}\n  <<: {b: 2}\n  c: 3\n",  # merge keys may repeat
    "m:\n  <<: {a: 1}\n  c: 3\n  c: 4\n",
    "- [1, [2, {a: x, b: y, a: z}]]\n",
    "a: 1\n---\nb: 2\nb: 3\n",
    "plain scalar\n",
]


@pytest.mark.parametrize("text", ANCHOR_FREE)
def test_without_anchors_the_key_check_refuses_exactly_what_the_full_check_does(
    text: str,
) -> None:
    assert "&" not in text
    assert _outcome(text, aliases=False) == _outcome(text, aliases=True)


# Nested mappings and sequences, with keys drawn from a small set so that repeats occur.
_leaf = st.sampled_from(["1", "x", "'q'", '"d"'])
_tree = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: ("seq", xs)),
        st.lists(st.tuples(st.sampled_from(["a", "b", "c", "<<"]), inner), max_size=4).map(
            lambda kvs: ("map", kvs)
        ),
    ),
    max_leaves=12,
)


def _flow(node: Any) -> str:
    if isinstance(node, str):
        return node
    kind, items = node
    if kind == "seq":
        return "[" + ", ".join(_flow(x) for x in items) + "]"
    return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in items) + "}"


@settings(max_examples=300, deadline=None)
@given(root=_tree)
def test_the_key_check_agrees_with_the_full_check_on_generated_documents(root: Any) -> None:
    text = f"top: {_flow(root)}\n"
    assert _outcome(text, aliases=False) == _outcome(text, aliases=True)


def test_the_key_check_is_taken_only_where_the_text_has_no_anchor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = _composer._check_keys

    def spy(roots: list[Any], yaml: Any) -> None:
        calls.append(len(roots))
        real(roots, yaml)

    monkeypatch.setattr(_composer, "_check_keys", spy)
    load("groups:\n- name: a\n  rules: []\n", "yaml")
    assert calls == [1]
    # an anchor (even one never used) means aliases may exist: the full check runs
    load("groups:\n- &g\n  name: a\n  rules: []\n", "yaml")
    assert calls == [1]
    with pytest.raises(DocumentError, match="the key 'expr' appears twice"):
        load("groups:\n- name: a\n  rules:\n  - expr: a\n    expr: b\n", "yaml")
    assert calls == [1, 1]


# --- expressions that cannot select a metric of a pattern: not parsed -----------------


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("ceph_.*", "ceph_"),
        ("ceph_osd_.*_total", "ceph_osd_"),
        ("cephx?", "ceph"),  # the x is optional
        ("ceph{2}", "cep"),
        ("ceph_(osd|mon)_.*", ""),  # an alternation anywhere: not read
        ("(?i)ceph_.*", ""),
        ("x\\.y", "x"),
        (".*_total", ""),
        ("node_load1", "node_load"),  # ends before a character a masked variable can be
        ("mimir_.*", ""),
    ],
)
def test_the_literal_every_name_a_pattern_matches_starts_with(pattern: str, literal: str) -> None:
    from errclass.migrate._semantics import _required_literal

    assert _required_literal(pattern) == literal


def _slow(sel: Any) -> Any:
    """The same selection with the pre-check off: every expression is parsed."""
    import dataclasses

    slow = dataclasses.replace(sel)
    object.__setattr__(slow, "_needles", None)
    return slow


_words = st.sampled_from(
    [
        "ceph_osd_up",
        "ceph_mon_quorum_status",
        "node_load1",
        "cephfs",
        "ceph",
        "up",
        "foo",
        "bar",
        "foo1bar",
        "${x}",
        "$x",
        "[[x]]",
        " ",
        "{",
        "}",
        "(",
        ")",
        "[5m]",
        "[$__rate_interval]",
        'job="ceph_osd_up"',
        "=",
        ",",
        "/",
        "sum",
        "rate",
        "by",
        "#",
        "\n",
        "__name__",
        '"',
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    words=st.lists(_words, max_size=10),
    pattern=st.sampled_from(["ceph_.*", "ceph_osd_.*", "foo1bar", "foo1.*", "node_load1"]),
    mode=st.sampled_from(["preserve", "split"]),
)
def test_an_expression_the_pre_check_skips_needs_nothing(
    words: list[str], pattern: str, mode: str
) -> None:
    """Whatever the pre-check lets through is planned as before; what it skips is, when
    parsed after all, either not PromQL or left unchanged without a word."""
    from errclass.migrate import Selection, migrate_expr

    text = "".join(words)
    sel = Selection((pattern,), mode=mode)
    slow = migrate_expr(text, _slow(sel))
    fast = migrate_expr(text, sel)
    if sel.mentions(text):
        assert (fast.new_text, fast.edits, fast.findings) == (
            slow.new_text,
            slow.edits,
            slow.findings,
        )
        return
    assert (fast.new_text, fast.edits, fast.findings) == (text, [], [])
    assert slow.new_text == text and slow.edits == []
    assert all(f.message.startswith("not valid PromQL") for f in slow.findings), slow.findings


def test_a_name_a_masked_variable_runs_into_is_still_read() -> None:
    """``foo${x}bar`` is read as ``foo1bar`` (the variable masked): the literal of
    ``foo1.*`` ends before the 1, so the pre-check lets the text through, and what the
    parse finds is reported (here the selector cannot be edited in the text)."""
    from errclass.migrate import Selection, migrate_expr

    sel = Selection(("foo1.*",), mode="split")
    text = 'sum(rate(foo${x}bar{job="a"}[5m])) / sum(rate(foo${x}bar[5m]))'
    assert sel.mentions(text)
    r = migrate_expr(text, sel)
    assert r.findings and r.findings == migrate_expr(text, _slow(sel)).findings


def _spy_parse(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts migrate parses from now on."""
    from errclass.migrate import _expr, _tree

    parsed: list[str] = []

    def spy(text: str) -> Any:
        parsed.append(text)
        return _tree.parse(text)

    monkeypatch.setattr(_expr, "parse", spy)
    return parsed


def test_the_pre_check_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    from errclass.migrate import Selection, migrate_expr

    parsed = _spy_parse(monkeypatch)
    sel = Selection(("ceph_.*",), mode="split")
    assert migrate_expr("sum(rate(node_cpu_seconds_total[5m]))", sel).findings == []
    assert parsed == []
    migrate_expr("sum(rate(ceph_osd_op_w[5m]))", sel)
    assert parsed == ["sum(rate(ceph_osd_op_w[5m]))"]
    # a __name__ matcher can name any metric: always parsed
    migrate_expr('{__name__="x"}', sel)
    assert len(parsed) == 2


# --- one run plans an expression once -------------------------------------------------

_REPEATED = (
    '{"panels": ['
    + ",".join(
        f'{{"title": "p{i}", "targets": [{{"expr": "sum(rate({m}{{reason=\\"write_failed\\"}}[5m]))'
        f' / sum(rate({m}[5m]))"}}]}}'
        for i, m in enumerate(["stream_outcomes_total", "stream_outcomes_total", "other"] * 2)
    )
    + "]}"
)


@pytest.mark.parametrize("mode", ["preserve", "split"])
def test_a_repeated_expression_is_planned_once_with_the_same_result(
    mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from errclass.migrate import Selection, _expr, plan_paths
    from errclass.migrate._files import FileResult, plan_text

    sel = Selection(("stream_outcomes_total",), mode=mode)
    (tmp_path / "a.json").write_text(_REPEATED)
    (tmp_path / "b.json").write_text(_REPEATED)
    parsed = _spy_parse(monkeypatch)
    results = plan_paths([tmp_path], sel)
    m = "stream_outcomes_total"
    expr = f'sum(rate({m}{{reason="write_failed"}}[5m])) / sum(rate({m}[5m]))'
    assert parsed.count(expr) == 1  # four sites in two files, planned once
    # the same as planning each site on its own, without any memo
    for r in results:
        assert r.changed
        alone = [
            _expr.migrate_expr(s.expr or "", Selection(sel.metrics, mode=mode)) for s, _ in r.sites
        ]
        assert [(x.new_text, x.edits, x.findings) for _, x in r.sites] == [
            (a.new_text, a.edits, a.findings) for a in alone
        ]
    # each site has its own copy: dropping one edit leaves the others
    memo: _expr.Memo = {}
    one = _expr.migrate_expr(results[0].sites[0][0].expr or "", sel, memo=memo)
    one.findings.clear()
    one.edits.clear()
    two = _expr.migrate_expr(results[0].sites[0][0].expr or "", sel, memo=memo)
    assert two.edits and two.findings
    assert plan_text(_REPEATED, "json", sel, FileResult(tmp_path)).new_text == results[0].new_text


@pytest.mark.parametrize("metric", ["ceph_.*", "ceph_osd_up"])
def test_a_quoted_metric_name_with_an_escape_is_still_read(metric: str) -> None:
    """``{"ce\\x70h_osd_up"}`` selects ceph_osd_up without the name in the text: a quoted
    name with an escape always goes to the parser (before, a metric given by name missed
    it); a backslash elsewhere (in a regex matcher) does not."""
    from errclass.migrate import Selection, migrate_expr

    sel = Selection((metric,), mode="preserve")
    text = '{"ce\\x70h_osd_up", reason="write_failed"}'
    assert sel.mentions(text)
    r = migrate_expr(text, sel)
    assert r.findings, r  # read, and reported: the lexer cannot place this selector
    assert r.findings == migrate_expr(text, _slow(sel)).findings
    for quoted in ("{job=\"a\", 'ce\\x70h_osd_up'}", '{ # note\n "ce\\x70h_osd_up"}'):
        assert sel.mentions(quoted), quoted
    assert not sel.mentions('sum(rate(node_cpu{mode=~"\\w+"}[5m]))')


# --- the composer: the resolver's three calls per node answered in C ------------------


def _nodes(node: Any) -> Any:
    """A composed node as plain data: kind, tag, value, style and where it is."""
    where = (node.start_mark.index, node.end_mark.index)
    if isinstance(node, yaml.ScalarNode):
        return ("scalar", node.tag, node.value, node.style, where)
    kind = "map" if isinstance(node, yaml.MappingNode) else "seq"
    items = node.value if kind == "seq" else [x for pair in node.value for x in pair]
    return (kind, node.tag, [_nodes(x) for x in items], node.flow_style, where)


def _reference(base: Any) -> type:
    class Reference(base):  # type: ignore[misc, valid-type]
        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            return ""  # the composer as it was: Python methods, no implicit typing

    return Reference


COMPOSED = [
    "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: |\n      up == 0\n    for: 5m\n",
    "a: !!str 1\nb: !custom {x: [1, 2.5, true, null, ~]}\nc: ! plain\n",
    "- &x {k: v}\n- *x\n- 'q''d'\n- \"e\\x41\"\n- >\n  folded\n  text\n",
    "a: 1\n---\n[1, {b: 2}]\n",
]


@pytest.mark.parametrize("text", COMPOSED)
@pytest.mark.parametrize("c", [True, False], ids=["libyaml", "pure-python"])
def test_the_composer_gives_the_nodes_a_python_resolver_returning_nothing_gives(
    text: str, c: bool
) -> None:
    if c and not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    base = yaml.CBaseLoader if c else yaml.BaseLoader
    fast = composer()
    if fast.__bases__ != (base,):  # the pure-Python fallback: the same three answers
        names = ("resolve", "descend_resolver", "ascend_resolver")
        fast = type("Fallback", (base,), {n: getattr(fast, n) for n in names})
    got = [_nodes(d) for d in yaml.compose_all(text, Loader=fast)]
    want = [_nodes(d) for d in yaml.compose_all(text, Loader=_reference(base))]
    assert got == want
    assert got[0][1] == ""  # a plain mapping or sequence: no implicit tag


# --- JSON read-back of an edited literal: the C string scanner alone -----------------


def _loads_reads_back(new_raw: str, expected: str) -> bool:
    """The read-back as it was: the whole token through json.loads."""
    import json

    try:
        value = json.loads(new_raw)
    except ValueError:
        return False
    return new_raw[:1] == new_raw[-1:] == '"' and value == expected


_json_chars = st.text(alphabet=st.sampled_from(list('"\\/ubnrtf0a9:{} \n\t\x01\ud800\u00e9')))


@settings(max_examples=1500, deadline=None)
@given(body=_json_chars, wrap=st.sampled_from(['"{}"', "{}", ' "{}"', '"{}" ', '"{}"x']))
def test_the_json_read_back_agrees_with_json_loads(body: str, wrap: str) -> None:
    import json

    from errclass.migrate._sites import _json_reads_back

    raw = wrap.replace("{}", body, 1)
    try:
        value = json.loads(raw)
    except ValueError:
        value = body
    for expected in {value if isinstance(value, str) else body, body}:
        assert _json_reads_back(raw, expected) == _loads_reads_back(raw, expected)


def test_an_edited_json_literal_is_read_back_by_the_scanner() -> None:
    from errclass.migrate._sites import _json_reads_back

    assert _json_reads_back('"a\\"b \\u00e9"', 'a"b \u00e9')
    assert not _json_reads_back('"a"b"', "a")  # extra data after the token
    assert not _json_reads_back('"a\x01"', "a\x01")  # a raw control character: strict
    assert not _json_reads_back('"\\x"', "x")  # not a JSON escape


# --- JSON spans: str.find and the C string scanner, against a full tokenizer ----------

_STRING_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"')  # every string token, in order


def _reference_spans(text: str, key: str) -> list[tuple[tuple[int, int], str]]:
    """Each ``"key": "string"`` in *text* (valid JSON), found by reading every string
    token in turn: outside strings JSON has no quotes, so each match is a real token."""
    tokens = list(_STRING_TOKEN.finditer(text))
    out = []
    for a, b in itertools.pairwise(tokens):
        between = text[a.end() : b.start()]
        if a.group() == f'"{key}"' and between.strip() == ":" and between.count(":") == 1:
            out.append((b.span(), json.loads(b.group())))
    return out


_json_value = st.recursive(
    st.text(alphabet=st.sampled_from(list('"\\/:expr {}\u00e9\n')), max_size=8) | st.integers(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["expr", "query", 'say "expr', "expr\\", "x", "expr "]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=16,
)


@settings(max_examples=400, deadline=None)
@given(
    doc=st.dictionaries(st.sampled_from(["expr", "panels", "a"]), _json_value, max_size=4),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 2]),
    slash=st.booleans(),
    spaced=st.booleans(),
)
def test_json_spans_are_every_key_value_token_the_tokenizer_finds(
    doc: dict[str, Any], ascii_only: bool, indent: int | None, slash: bool, spaced: bool
) -> None:
    from errclass.migrate._documents import JsonView

    text = json.dumps(doc, ensure_ascii=ascii_only, indent=indent)
    if slash:  # an escape json.dumps does not write: "/" only occurs inside strings
        text = text.replace("/", "\\/")
    if spaced:  # more whitespace around the colon (inside a string too: still valid)
        text = text.replace('": ', '"  :  ')
    view = JsonView(text)
    for key in ("expr", "query"):
        got = sorted((span, value) for value, spans in view._scan(key).items() for span in spans)
        assert got == sorted(_reference_spans(text, key)), text


def test_json_sites_with_one_value_written_two_ways_get_their_own_spans_in_order() -> None:
    from errclass.migrate._formats import extract

    text = (
        '{"panels": [{"title": "a", "targets": [{"say \\"expr": "x", "expr": "up/2"}]},'
        ' {"title": "b", "targets": [{"expr": "up\\/2"}]},'
        ' {"title": "c", "targets": [{"expr": "up/2"}]}]}'
    )
    sites = extract(load(text, "json")).sites
    assert [(s.location, text[s.start : s.end]) for s in sites] == [
        ('panel "a" query ?', '"up/2"'),
        ('panel "b" query ?', '"up\\/2"'),
        ('panel "c" query ?', '"up/2"'),
    ]
    assert {s.value for s in sites} == {"up/2"}
