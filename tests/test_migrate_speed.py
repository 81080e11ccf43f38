"""Issue 15 item 7: the fast paths of ``errclass migrate``. Each is checked twice: that
it is taken where it should be, and that it gives exactly what the slow path gives."""

from __future__ import annotations

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
