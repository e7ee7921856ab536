"""YAML front end: compose the node tree (which keeps marks) and build plain data plus positions.

We resolve scalars the YAML 1.2 way: `08:00` stays a string (YAML 1.1 would read it as the
sexagesimal number 480) and only true/false are booleans (`no` and `on` stay strings).
"""

from __future__ import annotations

import re

import yaml

from .diagnostics import Diagnostics, Span
from .source import Located

try:  # the C loader is several times faster; fall back quietly to the pure one
    _Base = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader


class _Loader(_Base):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
for _tag, _rx, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9_]*)$", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$", "-+0123456789."),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_rx), list(_first))


def _span(file: str, node: yaml.Node) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def load_yaml(text: str, file: str, diags: Diagnostics) -> Located | None:
    """Parse YAML text; syntax errors and duplicate keys become diagnostics."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(file, mark.line + 1, mark.column + 1) if mark else Span(file, 1, 1)
        diags.error("yaml-syntax", f"YAML syntax error: {exc.problem or exc}", span)
        return None
    except yaml.YAMLError as exc:
        diags.error("yaml-syntax", f"YAML error: {exc}", Span(file, 1, 1))
        return None
    finally:
        loader.dispose()
    located = Located(None, file)
    if node is None:
        diags.error("empty-policy", "the policy file is empty", Span(file, 1, 1))
        return None
    located.data = _build(node, (), located, loader, diags)
    return located


def _build(node, path, located: Located, loader, diags: Diagnostics):
    located.values[path] = _span(located.file, node)
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, path, located, loader, diags)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), located, loader, diags) for i, item in enumerate(node.value)]
    if node.style in ("'", '"'):
        located.text_offset[path] = 1
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        diags.error("yaml-value", f"cannot read this value: {exc.problem}", located.values[path])
        return None


def _build_mapping(node, path, located: Located, loader, diags: Diagnostics) -> dict:
    loader.flatten_mapping(node)  # resolves `<<` merge keys
    result: dict = {}
    for key_node, value_node in node.value:
        key = _build(key_node, path + ("<key>",), located, loader, diags)
        located.values.pop(path + ("<key>",), None)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            key = str(key)
        key = key if isinstance(key, str) else _scalar_key(key, key_node)
        if key in result:
            diags.error("duplicate-key", f"duplicate key '{key}'", _span(located.file, key_node),
                        "a key may appear once in a mapping; the second one would silently replace the first")
            continue
        located.keys[path + (key,)] = _span(located.file, key_node)
        result[key] = _build(value_node, path + (key,), located, loader, diags)
    return result


def _scalar_key(key, key_node) -> str:
    """Keys such as `2026-12-24` or `1` are used by their text, as written."""
    return key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
