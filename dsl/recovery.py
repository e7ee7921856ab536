"""Stand-ins for values that fail validation, so that one broken value does not hide the other errors.

When `validate(..., recover=True)` meets an error it has reported, `replace` swaps the failing value for
a stand-in (or removes it when the key is optional) and notes its path in `located.broken`. Stand-ins
are chosen so that they cause no diagnostic of their own: a segment becomes `true` (its name still
resolves), a step keeps its id and the parts that are valid, a template keeps its channel. The passes
that look at timing, windows or caps skip what is broken, so a stand-in cannot fake a warning either.
"""

from __future__ import annotations

import itertools

from .model import _IDENT

_ids = itertools.count(1)
STEP_ACTIONS = ("send", "escalate", "webhook", "stop")

# stand-ins for keys whose absence would be an error of its own (a required key, a step's action and its
# template), by key name: each of these names belongs to one model
STAND_INS = {"policy": "policy", "timezone": "UTC", "stages": {}, "when": "true", "at": "due", "max": 10_000,
             "per": "1d", "queue": "collections", "subject": "", "body": "", "template_name": "x", "language": "x",
             "send": ["_invalid"], "template": "_invalid", "escalate": {"queue": "collections"},
             "webhook": "_invalid", "stop": True}


def replace(error: dict, data: dict, located) -> None:
    """Make the value that `error` (a pydantic error) is about valid, noting what was replaced."""
    from .loader import _data_path

    loc = tuple(error["loc"])
    path = _data_path(loc, data)
    try:
        _replace(error["type"], loc, path, data, located)
    except (KeyError, IndexError, TypeError):  # an odd shape: leave it, the error is reported anyway
        pass


def _replace(kind: str, loc: tuple, path: tuple, data: dict, located) -> None:
    if kind == "extra_forbidden":
        _parent(data, path).pop(path[-1], None)  # reported as unknown; without it nothing is distorted
    elif kind == "missing":
        _put(data, path + (str(loc[-1]),), located)
    elif "[key]" in loc:
        _parent(data, path).pop(path[-1], None)
        located.broken.add(path)
    elif path:
        _put(data, path, located)


def _parent(data, path: tuple):
    for part in path[:-1]:
        data = data[part]
    return data


def _put(data: dict, path: tuple, located) -> None:
    parent, key = _parent(data, path), path[-1]
    if isinstance(parent, list) and not _is_item(path):
        _put(data, path[:-1], located)  # a bad item of a plain list: replace the whole list
        return
    old = parent[key] if _has(parent, key) else None
    if _step_path(path) and isinstance(old, dict) and _repair_step(old, path, located):
        return
    stand_in = _stand_in(path, old)
    located.broken.add(path)
    if path[0] == "experiments" and len(path) == 4:
        located.broken.add(path[:-1])  # the percentages' total now counts a stand-in: its check is not the file's
    if stand_in is _REMOVE:
        parent.pop(key, None)
    else:
        parent[key] = stand_in


_REMOVE = object()


def _has(parent, key) -> bool:
    return key in parent if isinstance(parent, dict) else 0 <= key < len(parent)


def _is_item(path: tuple) -> bool:
    """Items of lists that stand alone (a step, a cap): only that item is replaced."""
    return _step_path(path) or (len(path) == 2 and path[0] == "caps")


def _step_path(path: tuple) -> bool:
    return (len(path) == 4 and path[0] == "stages" and path[2] == "steps") or (len(path) == 3 and path[0] == "events")


def _stand_in(path: tuple, old):
    """What replaces the value at `path`; _REMOVE when the key may be left out (its default applies)."""
    key = path[-1]
    if _step_path(path):
        return {"id": f"_invalid{next(_ids)}", "at": "due", "stop": True}
    if path[0] == "segments" and len(path) == 2:
        return "true"
    if path[0] == "stages" and len(path) == 2:
        return {"when": "true"}
    if path[0] == "caps" and len(path) == 2:
        return {"max": STAND_INS["max"], "per": STAND_INS["per"]}
    if path[0] == "templates" and len(path) == 3:
        return _template(key)
    if path[0] == "templates" and len(path) == 2:
        return {}
    if path[0] == "experiments" and len(path) == 2:
        return {"variants": _balanced(old.get("variants") if isinstance(old, dict) else None)}
    if path[0] == "experiments" and len(path) == 4:
        return 0  # a variant's percentage; `variants` is then marked broken and made right below
    if key == "variants":
        return _balanced(old)
    if key == "id" and _step_path(path[:-1]):
        return f"_invalid{next(_ids)}"
    return STAND_INS.get(key, _REMOVE) if isinstance(key, str) else _REMOVE


def _template(channel: str):
    if channel == "email":
        return {"subject": "", "body": ""}
    if channel == "whatsapp":
        return {"template_name": "x", "language": "x"}
    return ""


def _balanced(old) -> dict:
    """Variants that add up to 100 and keep the names that are valid, so `variant(...)` still checks."""
    names = [n for n in old if isinstance(n, str) and _IDENT.match(n)] if isinstance(old, dict) else []
    names = names or ["a"]
    return {name: 100 if i == 0 else 0 for i, name in enumerate(names)}


def _repair_step(step: dict, path: tuple, located) -> bool:
    """Make a step do exactly one thing: the first action it names, with what belongs to it. Only the
    keys changed are marked, so the step's channels, template and conditions are still checked.
    False when its actions were not the problem."""
    named = [a for a in STEP_ACTIONS if step.get(a)]
    keep = named[0] if named else "stop"
    changed = [k for k in ("send", "escalate", "webhook", "stop", "template", "on_exhausted")
               if k in step and k != keep and not (keep == "send" and k in ("template", "on_exhausted"))]
    for key in changed:
        del step[key]
    if keep == "stop" and step.get("stop") is not True:
        step["stop"] = True
        changed.append("stop")
    elif keep == "send" and not step.get("template"):
        step["template"] = STAND_INS["template"]
        changed.append("template")
    located.broken.update(path + (key,) for key in changed)
    return bool(changed)
