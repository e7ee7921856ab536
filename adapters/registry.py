"""Adapter classes by name, from the entry point group `collect.channels`.

The built-in adapters are declared in collect's own pyproject.toml exactly like a third-party package
declares its own, so there is one way in. A plugin that fails to import does not hide the others: it
is reported by name when someone asks for it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "collect.channels"
# The adapters collect ships; a plugin cannot replace one of these under the same name.
BUILTIN_ADAPTERS = ("file", "smtp", "twilio", "twilio_voice", "whatsapp_cloud", "webhook")


class UnknownAdapter(LookupError):
    def __init__(self, name: str, available: list[str], problem: str | None = None):
        self.name, self.available, self.problem = name, available, problem
        detail = f": {problem}" if problem else f" (available: {', '.join(available)})"
        super().__init__(f"unknown adapter '{name}'{detail}")


def _ours(ep) -> bool:
    return ep.value.startswith("collect.adapters.")


def _entry_points() -> dict:
    """name -> entry point; collect's own first, so a same-named plugin never shadows a built-in, and
    one entry per name when the same distribution is visible twice on sys.path."""
    found: dict = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: (not _ours(ep), ep.name)):
        found.setdefault(ep.name, ep)
    return found


def discover() -> tuple[dict[str, type], dict[str, str]]:
    """(classes by name, problems by name for entry points that could not be loaded)."""
    classes: dict[str, type] = {}
    problems: dict[str, str] = {}
    for name, ep in _entry_points().items():
        try:
            classes[name] = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the built-ins down
            problems[name] = f"the plugin {ep.value} cannot be loaded: {type(exc).__name__}: {exc}"
    if "file" not in classes:  # metadata of an old install without entry points: keep a first run working
        from .file import FileChannel

        classes["file"] = FileChannel
    return classes, problems


def registry() -> dict[str, type]:
    """Adapter classes by name: built-ins and installed plugins."""
    return discover()[0]


def load_adapter(name: str) -> type:
    classes, problems = discover()
    if name in classes:
        return classes[name]
    raise UnknownAdapter(name, sorted(classes), problems.get(name))
