"""The docs cover what the code defines (project rule: "docs/ explains every policy key and command with a
working example").

The lists come from the code: the commands and options from the typer app, the policy keys from the
pydantic model, the channels.yaml keys from the adapters' Settings, the behavior keys from BehaviorSpec,
the column-map keys from MAP_KEYS. Each must be explained in its page and used in an example; the policy
examples of the docs must compile, and the channels.yaml, behavior and column-map examples must load.
Nothing here runs a command or needs the network (the sh examples are not run: that is slow).
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOC_FILES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


CLI_MD, LANGUAGE_MD, CHANNELS_MD, SIMULATE_MD, FILES_MD = (
    read(DOCS / name) for name in ("cli.md", "language.md", "channels.md", "simulate.md", "files.md"))


# -- reading markdown -----------------------------------------------------------------------------------

def fences(path: Path) -> list[tuple[int, str, str]]:
    """(line of the first content line, language, text) of every fenced block of a markdown file."""
    out, lines, i = [], read(path).splitlines(), 0
    while i < len(lines):
        m = re.match(r"^\s*```(\S*)\s*$", lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
                j += 1
            out.append((i + 2, m.group(1), "\n".join(lines[i + 1:j])))
            i = j + 1
        else:
            i += 1
    return out


ALL_FENCES = [(p, line, lang, text) for p in DOC_FILES for line, lang, text in fences(p)]


def where(p: Path, line: int) -> str:
    return f"{p.relative_to(ROOT)}:{line}"


def yaml_blocks(*paths: Path) -> list[str]:
    return [text for p, _, lang, text in ALL_FENCES if lang in ("yaml", "yml") and (not paths or p in paths)]


def key_in_yaml(key: str, blocks: list[str]) -> bool:
    """`key:` written as a key (block or flow style) in one of the YAML blocks."""
    rx = re.compile(r"(?:^|[\s{,\[-])" + re.escape(key) + r"\s*:(?:\s|$)", re.M)
    return any(rx.search(text) for text in blocks)


def mentioned(name: str, text: str) -> bool:
    """`name` written as code outside the fences (an inline code span holding it as a word), or as a key
    in a YAML fence of the text."""
    word = re.compile(r"(?<![\w.-])" + re.escape(name) + r"(?![\w-])")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    if any(word.search(span) for span in re.findall(r"`([^`]+)`", prose)):
        return True
    return key_in_yaml(name, re.findall(r"```ya?ml\n(.*?)```", text, flags=re.S))


def section(doc: str, heading_rx: str, level: str = "## ") -> str:
    """The text of the `## ` (or `### `) section whose heading matches, up to the next heading of its
    level or above."""
    for part in re.split(r"^" + re.escape(level), doc, flags=re.M)[1:]:
        if re.match(heading_rx, part.splitlines()[0]):
            return re.split(r"^## ", part, flags=re.M)[0]
    return ""


def invocations(paths=DOC_FILES) -> list[str]:
    """The command lines of the examples: every line of a sh, console or cron block, and the `$ ` lines of
    a text transcript; a line continued with `\\` is one line."""
    lines = []
    for p, _, lang, text in ALL_FENCES:
        if p not in paths:
            continue
        text = re.sub(r"\\\n\s*", " ", text)
        if lang in ("sh", "bash", "shell", "console", "cron"):
            lines += text.splitlines()
        elif lang == "text":
            lines += [line[2:] for line in text.splitlines() if line.startswith("$ ")]
    return lines


def runs(command: str, line: str) -> bool:
    return re.search(r"(?:^|[\s$&;(])collect\s+" + command + r"(?:\s|$)", line) is not None


# -- commands and options (docs/cli.md) ----------------------------------------------------------------

def _commands() -> dict:
    import typer.main

    from collect.cli import app

    def walk(cmd, prefix):
        if hasattr(cmd, "commands"):  # a group (`db`)
            for name, sub in cmd.commands.items():
                yield from walk(sub, prefix + [name])
        else:
            yield " ".join(prefix), cmd

    return dict(walk(typer.main.get_command(app), []))


COMMANDS = _commands()
OPTIONS = [(name, tuple(p.opts) + tuple(p.secondary_opts)) for name, cmd in sorted(COMMANDS.items())
           for p in cmd.params if p.param_type_name == "option"]
OPTION_IDS = [f"{name}{spellings[0]}" for name, spellings in OPTIONS]
CLI_PREAMBLE = re.split(r"^## ", CLI_MD, flags=re.M)[0]
CLI_EXAMPLES = invocations([DOCS / "cli.md"])
ALL_EXAMPLES = invocations()


def command_section(name: str) -> str:
    return section(CLI_MD, r"collect " + re.escape(name) + r"(\s|$)")


def test_the_command_lists_are_not_empty():
    assert len(COMMANDS) >= 14 and len(OPTIONS) >= 40 and len(CLI_EXAMPLES) >= len(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_a_section_in_cli_md(name):
    assert command_section(name), f"docs/cli.md has no '## collect {name}' section"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_an_example_in_cli_md(name):
    assert any(runs(re.escape(name), line) for line in CLI_EXAMPLES), (
        f"no sh example of docs/cli.md runs `collect {name}`")


@pytest.mark.parametrize("name,spelling", [(n, s) for n, spellings in OPTIONS for s in spellings
                                           if not s.startswith("--no-")])
def test_option_spelling_in_cli_md(name, spelling):
    """Every spelling of every option (`-o` and `--output`) appears in docs/cli.md."""
    assert re.search(re.escape(spelling) + r"(?![\w-])", CLI_MD), f"`collect {name} {spelling}` is not in docs/cli.md"


@pytest.mark.parametrize("name,spellings", OPTIONS, ids=OPTION_IDS)
def test_option_explained_in_its_command_section(name, spellings):
    """The command's section (or the part of cli.md before the first command, for `--format`) names it."""
    text = command_section(name) + CLI_PREAMBLE
    assert any(re.search(re.escape(s) + r"(?![\w-])", text) for s in spellings), (
        f"'## collect {name}' in docs/cli.md does not explain {'/'.join(spellings)}")


@pytest.mark.parametrize("name,spellings", OPTIONS, ids=OPTION_IDS)
def test_option_used_in_an_example(name, spellings):
    """An example (docs/*.md or README.md) runs the command with the option. `--db`, explained once for
    every store command, counts with any command."""
    command = r"\S+" if "--db" in spellings else re.escape(name)
    uses = [line for line in ALL_EXAMPLES if runs(command, line)]
    assert any(re.search(r"(?:^|\s)" + re.escape(s) + r"(?:[\s=]|$)", line) for line in uses for s in spellings), (
        f"no example runs `collect {name}` with {'/'.join(spellings)}")


# -- the policy language (docs/language.md) ------------------------------------------------------------

def _policy_keys() -> list[tuple[str, str]]:
    """(path, key) of every key of the policy model, nested models followed."""
    from pydantic import BaseModel

    from collect.dsl.model import Policy

    found, seen = [], set()

    def models_in(annotation):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in typing.get_args(annotation):
            yield from models_in(arg)

    def visit(model, path):
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            found.append((path, key))
            for sub in models_in(field.annotation):
                visit(sub, f"{path}.{key}" if path else key)

    visit(Policy, "")
    return found


POLICY_KEYS = _policy_keys()
POLICY_IDS = [f"{path or 'top'}.{key}" for path, key in POLICY_KEYS]


def test_the_policy_model_has_keys():
    assert len(POLICY_KEYS) >= 40 and {"stages", "templates_dir", "html"} <= {key for _, key in POLICY_KEYS}


@pytest.mark.parametrize("path,key", POLICY_KEYS, ids=POLICY_IDS)
def test_policy_key_explained_in_language_md(path, key):
    assert mentioned(key, LANGUAGE_MD), f"policy key `{key}` ({path or 'top level'}) is not in docs/language.md"


@pytest.mark.parametrize("path,key", POLICY_KEYS, ids=POLICY_IDS)
def test_policy_key_used_in_a_yaml_example(path, key):
    assert key_in_yaml(key, yaml_blocks()), f"policy key `{key}` ({path or 'top level'}) is in no YAML example"


def _compile(path: Path) -> list[str]:
    """The errors of compiling a policy file (none when it compiles)."""
    from collect.engine.compiler import compile_policy

    result = compile_policy(path)
    errors = [d.render() for d in result.diagnostics.sorted() if d.severity == "error"]
    return errors or ([] if result.plan is not None else ["no plan"])


def _is_full_yaml(text: str) -> bool:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "policy" in data and "stages" in data


FULL = [(p, line, ".yaml", text) for p, line, lang, text in ALL_FENCES if lang in ("yaml", "yml") and _is_full_yaml(text)]
FULL += [(p, line, ".collect", text) for p, line, lang, text in ALL_FENCES
         if lang in ("text", "collect") and re.match(r"\s*policy\s+\S+", text)]


def test_the_docs_have_full_policies_in_both_forms():
    assert {suffix for *_, suffix, _ in FULL} == {".yaml", ".collect"}


@pytest.mark.parametrize("p,line,suffix,text", FULL, ids=[where(p, line) for p, line, _, _ in FULL])
def test_full_policy_example_compiles(p, line, suffix, text, tmp_path):
    path = tmp_path / f"policy{suffix}"
    path.write_text(text + "\n", encoding="utf-8")
    errors = _compile(path)
    assert not errors, f"{where(p, line)} does not compile:\n" + "\n".join(errors)


# Partial snippets are compiled inside a small policy that has what they refer to (templates, segments).
_T = "Hola {{ customer.name }} {{ total_balance | money }} {{ pay_link }}"
_TEMPLATE_NAMES = ("overdue", "plan_offer", "promise_reminder", "promise_broken", "friendly")


def _base_policy() -> dict:
    body = {"email": {"subject": "s {{ invoice.number }}", "body": _T}, "sms": _T, "letter": _T, "voice": _T,
            "whatsapp": {"template_name": "x", "language": "es", "params": ["{{ customer.name }}"]}}
    return {"policy": "t", "timezone": "America/Lima", "fields": {"customer.risk_score": "float"},
            "windows": {"default": {"mon-sun": "08:00-20:00"}},
            "segments": {"big": "invoice.amount > 1000", "low_risk": "customer.risk_score < 0.3",
                         "risky": "customer.risk_score >= 0.7"},
            "templates": {name: copy.deepcopy(body) for name in _TEMPLATE_NAMES},
            "stages": {"s": {"when": "true", "steps": [{"id": "base-1", "at": "due+1d", "send": "email",
                                                         "template": "overdue"}]}}}


_BASE_TEXT = ["policy t", "timezone America/Lima", "field customer.risk_score: float",
              "window default mon-sun 08:00-20:00", "segment big = invoice.amount > 1000",
              "segment low_risk = customer.risk_score < 0.3", "segment risky = customer.risk_score >= 0.7"] + [
    line for n in _TEMPLATE_NAMES for line in (
        f'template {n} email {{ subject "s {{{{ invoice.number }}}}"; body "{_T}" }}', f'template {n} sms "{_T}"',
        f'template {n} letter "{_T}"', f'template {n} voice "{_T}"',
        f'template {n} whatsapp {{ template_name x; language es; params "{{{{ customer.name }}}}" }}')]
_BASE_STAGE = "stage s when true {\n  base-1 at due+1d: send email with overdue\n}"
_TOP_KEYS = {key for path, key in POLICY_KEYS if not path}
_STATEMENTS = ("policy", "description", "timezone", "currency", "calendar", "field", "compliance", "window",
               "holidays", "cap", "on_cap", "group_by", "catch_up", "max_lateness", "templates_dir", "segment",
               "template", "experiment", "stage", "on", "pause_when", "stop_when", "compliance_settings")
_POLICY_PAGES = (DOCS / "language.md", DOCS / "compliance.md", DOCS / "files.md", ROOT / "README.md")


def _partial_yaml():
    out = []
    for p, line, lang, text in ALL_FENCES:
        if p not in _POLICY_PAGES or lang not in ("yaml", "yml"):
            continue
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        steps = isinstance(data, list) and data and all(isinstance(s, dict) and "id" in s for s in data)
        if steps or (isinstance(data, dict) and set(data) <= _TOP_KEYS and not _is_full_yaml(text)):
            out.append(pytest.param(p, line, text, id=where(p, line)))
    return out


def _partial_text():
    out = []
    for p, line, lang, text in ALL_FENCES:
        if p.name in ("language.md", "README.md") and lang == "text" and not re.match(r"\s*policy\s", text):
            first = next((l.split()[0] for l in text.splitlines() if l.strip() and not l.strip().startswith("#")), "")
            if first in _STATEMENTS:
                out.append(pytest.param(p, line, text, id=where(p, line)))
    return out


PARTIAL_YAML, PARTIAL_TEXT = _partial_yaml(), _partial_text()


def test_the_docs_have_partial_snippets():
    assert len(PARTIAL_YAML) >= 15 and len(PARTIAL_TEXT) >= 10


@pytest.mark.parametrize("p,line,text", PARTIAL_YAML)
def test_partial_yaml_example_compiles_in_a_policy(p, line, text, tmp_path):
    (tmp_path / "templates").mkdir()  # for `templates_dir: templates/`
    top = re.findall(r"^([A-Za-z_]+)\s*:", text, re.M)
    twice = sorted({k for k in top if top.count(k) > 1})
    assert not twice, f"{where(p, line)} gives {', '.join(twice)} more than once: as a file, a duplicate key"
    data, policy = yaml.safe_load(text), _base_policy()
    if isinstance(data, list):  # forms of one step: each its own id
        data = {"stages": {"s": {"when": "true", "steps": [{**s, "id": f"{s['id']}-{i}"} for i, s in enumerate(data)]}}}
    for key, value in data.items():
        if key != "stages" and isinstance(value, dict) and isinstance(policy.get(key), dict):
            policy[key] = {**policy[key], **value}
        else:
            policy[key] = value
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False), encoding="utf-8")
    errors = _compile(path)
    assert not errors, f"{where(p, line)} does not compile inside a policy:\n" + "\n".join(errors)


@pytest.mark.parametrize("p,line,text", PARTIAL_TEXT)
def test_partial_text_example_compiles_in_a_policy(p, line, text, tmp_path):
    (tmp_path / "templates").mkdir()
    given = {tuple(l.split()[:2]) for l in text.splitlines() if l.strip()}
    base = [l for l in _BASE_TEXT if tuple(l.split()[:2]) not in given]  # the snippet's own lines win
    stage = "" if re.search(r"^\s*stage\s", text, re.M) else _BASE_STAGE
    path = tmp_path / "policy.collect"
    path.write_text("\n".join(base) + "\n" + text + "\n" + stage + "\n", encoding="utf-8")
    errors = _compile(path)
    assert not errors, f"{where(p, line)} does not compile inside a policy:\n" + "\n".join(errors)


# -- channels.yaml (docs/channels.md) ----------------------------------------------------------------

def _adapters() -> dict:
    from collect.adapters.registry import discover

    return {name: cls for name, cls in discover()[0].items() if cls.__module__.startswith("collect.adapters.")}


ADAPTERS = _adapters()
ADAPTER_SETTINGS = [(name, f.alias or field) for name, cls in sorted(ADAPTERS.items())
                    for field, f in cls.Settings.model_fields.items()]


def _channels_examples() -> list[tuple[int, str, bool]]:
    """(line, text, whether it is an example of a broken file) of the channels.yaml examples of the page;
    a broken one is followed by the `error: ...` it gives."""
    blocks, out = fences(DOCS / "channels.md"), []
    for i, (line, lang, text) in enumerate(blocks):
        data = yaml.safe_load(text) if lang == "yaml" else None
        if isinstance(data, dict) and "channels" in data:
            broken = i + 1 < len(blocks) and blocks[i + 1][2].startswith("error:")
            out.append((line, text, broken))
    return out


CHANNELS_EXAMPLES = _channels_examples()


def _used_in_channels_examples() -> dict[str, set[str]]:
    """The keys the examples set: 'top', 'retry', and per adapter name its settings."""
    used: dict[str, set[str]] = {"top": set(), "retry": set()}
    for _, text, _ in CHANNELS_EXAMPLES:
        data = yaml.safe_load(text)
        used["top"] |= set(data)
        used["retry"] |= set(data.get("retry") or {})
        for entry in (data.get("channels") or {}).values():
            if isinstance(entry, dict):
                used.setdefault(str(entry.get("adapter")), set()).update(set(entry) - {"adapter"})
    return used


def test_the_adapters_are_found():
    assert {"file", "smtp", "twilio", "twilio_voice", "whatsapp_cloud", "webhook"} <= set(ADAPTERS)
    assert len(CHANNELS_EXAMPLES) >= 2


def _channel_keys():
    from collect.engine.channels import RETRY_KEYS, TOP_KEYS

    return [("top", k) for k in TOP_KEYS] + [("retry", k) for k in RETRY_KEYS] + ADAPTER_SETTINGS


CHANNEL_KEYS = _channel_keys()


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapter_has_a_section(name):
    assert re.search(r"^### `" + re.escape(name) + "`", CHANNELS_MD, re.M), f"docs/channels.md has no ### `{name}`"


@pytest.mark.parametrize("owner,key", CHANNEL_KEYS, ids=[f"{o}.{k}" for o, k in CHANNEL_KEYS])
def test_channels_key_explained(owner, key):
    text = CHANNELS_MD if owner in ("top", "retry") else section(CHANNELS_MD, "`" + re.escape(owner) + "`", "### ")
    assert mentioned(key, text) or mentioned(f"{owner}.{key}", text), (
        f"channels.yaml `{key}` ({owner}) is not explained in docs/channels.md"
        + ("" if owner in ("top", "retry") else f" under ### `{owner}`"))


@pytest.mark.parametrize("owner,key", CHANNEL_KEYS, ids=[f"{o}.{k}" for o, k in CHANNEL_KEYS])
def test_channels_key_used_in_an_example(owner, key):
    """Set in a channels.yaml example of docs/channels.md, for a channel on that adapter."""
    assert key in _used_in_channels_examples().get(owner, set()), (
        f"no channels.yaml example of docs/channels.md sets `{key}`"
        + ("" if owner in ("top", "retry") else f" on a `{owner}` channel"))


_ENV = {"SMTP_USER": "user", "SMTP_PASSWORD": "pass-word", "TWILIO_ACCOUNT_SID": "AC0000",
        "TWILIO_AUTH_TOKEN": "tok-en", "WA_PHONE_ID": "1234", "WA_TOKEN": "tok-en2", "WEBHOOK_SECRET": "sec-ret",
        "CRM_SECRET": "sec-ret2", "CRM_TOKEN": "tok-en3"}


@pytest.mark.parametrize("line,text,broken", CHANNELS_EXAMPLES, ids=[f"docs/channels.md:{l}" for l, _, _ in CHANNELS_EXAMPLES])
def test_channels_example_loads(line, text, broken, tmp_path, monkeypatch):
    """Every channels.yaml example loads with the channels loader (its ${ENV} set); the example of a broken
    file does not."""
    from collect.engine.channels import ChannelsError, load_channels

    for name, value in _ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "channels.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    if broken:
        with pytest.raises(ChannelsError):
            load_channels(path)
        return
    try:
        load_channels(path).close()
    except ChannelsError as exc:
        pytest.fail(f"docs/channels.md:{line} does not load: {exc}")


def test_channels_error_codes_listed():
    """'The codes' of docs/channels.md: every code the loader can give."""
    codes = set(re.findall(r'"(channels-[a-z-]+)"', read(ROOT / "engine" / "channels.py")))
    listed = set(re.findall(r"`(channels-[a-z-]+)`", CHANNELS_MD))
    assert codes and codes <= listed, f"codes not in docs/channels.md: {sorted(codes - listed)}"


# -- behavior models (docs/simulate.md) ------------------------------------------------------------------

def _behavior_fields() -> dict:
    from collect.engine.behavior import BehaviorSpec

    return BehaviorSpec.model_fields


BEHAVIORS = section(SIMULATE_MD, r"Behaviors\s*$")


@pytest.mark.parametrize("key", list(_behavior_fields()))
def test_behavior_key_used_in_an_example(key):
    assert key_in_yaml(key, yaml_blocks(DOCS / "simulate.md")), f"behavior key `{key}` is in no example of docs/simulate.md"


@pytest.mark.parametrize("key", list(_behavior_fields()))
def test_behavior_key_explained_with_its_default(key):
    """The Behaviors section has a row `| `key` | `default` | ... |` with the code's default."""
    row = re.search(r"^\| `" + re.escape(key) + r"` \| `([^`]*)` \|", BEHAVIORS, re.M)
    assert row, f"docs/simulate.md#behaviors has no table row for `{key}` with its default"
    default = _behavior_fields()[key].default
    written = yaml.safe_load(row.group(1))
    assert written == (list(default) if isinstance(default, tuple) else default), (key, row.group(1), default)


def test_behavior_examples_load(tmp_path):
    from collect.engine.behavior import BehaviorModel

    blocks = [t for t in yaml_blocks(DOCS / "simulate.md") if "pay_probability" in t]
    assert blocks, "docs/simulate.md has no behavior model example"
    for text in blocks:
        path = tmp_path / "behavior.yaml"
        path.write_text(text + "\n", encoding="utf-8")
        BehaviorModel.load(path, 0)


# -- the column map (docs/files.md) ----------------------------------------------------------------------

def _map_keys():
    from collect.engine.portfolio import MAP_KEYS

    return MAP_KEYS


@pytest.mark.parametrize("key", _map_keys())
def test_map_key_explained(key):
    assert mentioned(key, section(FILES_MD, r"The column map")), f"--map key `{key}` is not in docs/files.md#the-column-map"


@pytest.mark.parametrize("key", _map_keys())
def test_map_key_used_in_an_example(key):
    assert key_in_yaml(key, yaml_blocks(DOCS / "files.md")), f"--map key `{key}` is in no YAML example of docs/files.md"


def test_map_examples_load(tmp_path):
    from collect.engine.portfolio import load_map

    blocks = [t for t in yaml_blocks(DOCS / "files.md") if re.search(r"^columns:", t, re.M)]
    assert blocks, "docs/files.md has no column map example"
    for text in blocks:
        path = tmp_path / "map.yaml"
        path.write_text(text + "\n", encoding="utf-8")
        load_map(path)


# -- keys quoted from the starter project -----------------------------------------------------------------

def test_contact_keys_in_the_docs_are_the_starter_policys():
    """The events examples use contact keys of `collect init`'s policy, which start with its plan_hash:
    a change to the starter changes the hash, and an example copied from the docs would then import as
    `unknown contact`."""
    from collect.engine.compiler import compile_policy

    prefix = compile_policy(ROOT / "engine" / "starter" / "policy.yaml").plan.plan_hash[:12]
    quoted = {m for text in (CLI_MD, FILES_MD) for m in re.findall(r"\b([0-9a-f]{12})\|[\w-]+\|INV-", text)}
    assert quoted == {prefix}
