"""Every field name MPS documents, through the name rule, against a reviewed list.

``tests/fixtures/reference/fields-*.txt`` are the MPS notification field trees (one field
a line, indented, ``Name: type``); ``redacted-names.txt`` lists, reviewed by hand, the names
the rule redacts. A change to the rule that redacts one more MPS name, or one fewer, fails
here until the list is reviewed again. A property test runs generated bodies (MPS names
and names built from the stems, in any case) through ``redact``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_callback.verify.redact import MARKER, redact
from mps_callback.verify.secret_names import HARMLESS_COMPOUNDS, is_secret_name

REFERENCE = Path(__file__).parent.parent / "fixtures" / "reference"


def _field_names() -> set[str]:
    return {
        line.strip().split(":", 1)[0]
        for path in REFERENCE.glob("fields-*.txt")
        for line in path.read_text().splitlines()
        if line.strip()
    }


def test_every_mps_field_name_is_judged_as_reviewed():
    names = _field_names()
    assert len(names) > 500  # both trees are there
    reviewed = set((REFERENCE / "redacted-names.txt").read_text().split())
    assert {name for name in names if is_secret_name(name)} == reviewed


_NAMES = (
    sorted(_field_names())
    + [
        "KeyWord",
        "KEYWORD",
        "KeyWOrds",
        "ApikeyWord",
        "apiKeyword",
        "TagKeyword",
        "ObjectKeyKey",
        "AK",
        "SK",
        "Sk",
        "aK",
        "ask",
        "x_sk",
        "TaSK",
        "Signature",
        "q-signature",
        "clientsecret",
        "drmkeys",
        "monkey",
        "Design",
        "SignLanguage",
        "TokenCount",
        "keyword_key",
        "key",
        "sig",
        "Sign",
        "\u00e9Key",
        "Ke_y",
        "Secretag",
        "pbkeylen",
    ]
    + [compound.capitalize() for compound in HARMLESS_COMPOUNDS]
)
#: Names built from the fragments the rule and the pre-scan look at, in any case and order.
_BUILT = st.lists(
    st.sampled_from(
        [
            "Key",
            "key",
            "KEY",
            "K",
            "ey",
            "word",
            "Word",
            "WO",
            "rds",
            "sig",
            "Sign",
            "n",
            "ak",
            "AK",
            "Sk",
            "sk",
            "S",
            "a",
            "T",
            "_",
            "-",
            "Tag",
            "object",
            "frame",
            "Len",
            "Secret",
            "api",
            "Drm",
            "s",
            "3",
            "Pts",
            "Server",
            "Time",
        ]
    ),
    min_size=1,
    max_size=5,
).map("".join)
_KEYS = st.one_of(st.sampled_from(_NAMES), _BUILT)
_STRINGS = st.sampled_from(["", "v", "a b", "https://x/a.mp4?sign=s&t=1", "&token=t", "KeyWord", "x=y", "\n"])
_LEAVES = st.one_of(_STRINGS, st.integers(0, 9), st.booleans(), st.none())
_TREES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=4)),
    max_leaves=12,
)


def _leaves(node: Any) -> list[Any]:
    """Every number, boolean and null in ``node``, in order."""
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return [] if isinstance(node, str) else [node]


def _exposed(node: Any, under_secret: bool = False) -> list[str]:
    """Strings left under a secret name (there should be none but empty ones)."""
    if isinstance(node, dict):
        return [s for name, value in node.items() for s in _exposed(value, under_secret or is_secret_name(name))]
    if isinstance(node, list):
        return [s for value in node for s in _exposed(value, under_secret)]
    return [node] if under_secret and isinstance(node, str) and node not in ("", MARKER) else []


@given(tree=st.dictionaries(_KEYS, _TREES, min_size=1, max_size=5))
@settings(max_examples=500, deadline=None)
def test_any_body_keeps_its_numbers_loses_its_secrets_and_is_redacted_once(tree: dict[str, Any]):
    body = copy.deepcopy(tree)
    redact(body)
    assert _leaves(body) == _leaves(tree)
    assert _exposed(body) == []
    dumped = orjson.dumps(body)
    assert b"sign=s" not in dumped and b"token=t" not in dumped
    assert redact(body) == 0
