"""Which adapter delivers each channel: channels.yaml, or the built-in `file` adapter for everything.

Everything in channels.yaml is checked when it is loaded, and every problem is reported with its place
(FILE:LINE:COL), not only the first: channel names that are no channel (a built-in one or an installed
plugin's), unknown adapters (naming the ones installed), unknown or missing settings (from each adapter's
settings model), `${ENV}` references to unset variables (naming the variable, never a value), a `file`
adapter `path` that is a folder, `retry:` and `costs:`. `collect simulate --channels` reads `costs:` alone
(`load_costs`), checked the same way, and with `--render` the channels' adapter names, not their settings
(`load_refusals`). Once the policy is known too (`collect run`, `collect serve`), `Channels.check_plan`
says what the configuration lacks for it: a step none of whose channels is configured, and what an
adapter's optional `check(plan)` hook reports (a Twilio WhatsApp template without a Content SID).

Secrets stay out of output: `Channels.redact(text)` masks every value that came from an `${ENV}`
reference and every value of a secret-named setting (password, token, auth_token, secret, headers);
adapters scrub their own error strings, and neither Channels nor an adapter shows a secret in repr().
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ValidationError

from ..adapters.base import MAX_WAIT, SECRET_KEYS, DeliveryResult, Message, redact, seconds
from ..adapters.registry import discover
from ..dsl.diagnostics import Diagnostic, Diagnostics, Span, suggest
from .portfolio import MONEY_PLACES

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
TOP_KEYS = ("channels", "retry", "costs", "pay_link")
# what templates get as {{ pay_link }} when channels.yaml names none: fine for outbox files, never for customers
EXAMPLE_PAY_LINK = "https://pay.example.com/c/{customer_id}"
RETRY_KEYS = ("attempts", "backoff")
# An ${ENV} value this short is not masked unless its setting is secret-named: masking "25" or "true"
# everywhere would garble output without protecting anything.
MIN_MASKED = 4
MAX_COST = Decimal(1_000_000)  # a cost per message from 1,000,000 up is a slip (a total, a unit in cents)

NOT_CONFIGURED = "channel_not_configured"  # the error code of a send on a channel the file leaves out
Where = Callable[[tuple, bool], "Span | None"]  # (path, prefer the key's place) -> place in the file


class ChannelsError(Exception):
    """channels.yaml is wrong; carries every problem found, each with its place when known."""

    def __init__(self, diagnostics: list[Diagnostic]):
        far = Span("", 10**9, 0)
        self.diagnostics = sorted(diagnostics, key=lambda d: ((d.span or far).line, (d.span or far).col))
        super().__init__("\n".join(_render(d) for d in self.diagnostics))


def _render(d: Diagnostic) -> str:
    where = f"{d.span.file}:{d.span.line}:{d.span.col}: " if d.span else ""
    return f"{where}{d.message}" + (f" ({d.hint})" if d.hint else "")


def render(d: Diagnostic) -> str:
    """One problem as a line, `FILE:LINE:COL: ` first when its place is known; a warning says so after
    the place (an error's lines follow the `error: ` that starts the report)."""
    if d.severity != "warning":
        return _render(d)
    where = f"{d.span.file}:{d.span.line}:{d.span.col}: " if d.span else ""
    return f"{where}warning: {d.message}" + (f" ({d.hint})" if d.hint else "")


def _known_channels() -> tuple[str, ...]:
    from .compiler import known_channels

    return known_channels()


@dataclass(frozen=True)
class Retry:
    """How the runner retries transient failures: `attempts` tries in all (the first included), waiting
    `backoff` seconds before the second and doubling the wait for each further one, at most MAX_WAIT."""

    attempts: int = 3
    backoff: float = 30.0

    def delay(self, failed_attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the n-th failed attempt; never less than the provider asked for, never
        more than MAX_WAIT (a wait added to a date must not overflow it, whatever a plugin returns)."""
        doubled = self.backoff * 2 ** min(max(failed_attempts - 1, 0), 32)  # a bounded exponent stays a float
        asked = retry_after if isinstance(retry_after, (int, float)) else 0.0
        return min(max(doubled, asked), MAX_WAIT)


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


class _Unconfigured:
    """A channel that channels.yaml does not map: every send fails permanently (so the runner falls
    back to the next channel) instead of going somewhere nobody configured."""

    name = "unconfigured"
    supports_html = supports_templates = free_text = False

    def __init__(self, channel: str, configured: list[str]):
        self.channel, self.configured = channel, configured

    def send(self, message: Message) -> DeliveryResult:
        return self.refuses(self.channel, message)

    def refuses(self, channel: str, message: Message) -> DeliveryResult:
        return DeliveryResult.permanent(NOT_CONFIGURED, f"channel '{channel}' is not in "
                                        f"channels.yaml (configured: {', '.join(self.configured)})")

    def __repr__(self) -> str:
        return f"<unconfigured channel={self.channel!r}>"


class _Names:
    """The channels of a configuration and their adapters' names, checked without their settings: what
    `Channels` checks first, and all that `load_refusals` needs."""

    def __init__(self, config: dict[str, dict] | None, where: Where | None):
        self.config = {str(name): settings for name, settings in (config or {}).items()}  # as written
        self.classes, self._broken = discover()
        self._where = where or (lambda path, key=False: None)

    def _error(self, diags: Diagnostics, code: str, path: tuple, message: str, hint: str | None = None,
               key: bool = False) -> None:
        diags.error(code, f"{_dotted(('channels', *path))}: {message}", self._where(("channels", *path), key), hint)

    def _check_names(self, diags: Diagnostics) -> None:
        """A key of `channels:` is a channel: a built-in one or an installed plugin's. A misspelt one
        (`emial:`) would leave its channel unconfigured and every send on it failing."""
        if not self.config:
            return
        known = _known_channels()
        for channel in self.config:
            if channel not in known:
                self._error(diags, "channels-unknown-key", (channel,), f"unknown channel '{channel}' (available: "
                            f"{', '.join(known)})", suggest(channel, known), key=True)

    def _adapter_class(self, channel: str, settings, diags: Diagnostics):
        """The class of the channel's `adapter:`; None, with the problem in `diags`, when there is none."""
        if not isinstance(settings, dict):
            return self._error(diags, "channels-not-mapping", (channel,), "expected a mapping such as "
                               "{adapter: smtp, host: ...}")
        name = settings.get("adapter")
        if name is None:
            self._error(diags, "channels-no-adapter", (channel,), "no `adapter`",
                        f"available: {', '.join(sorted(self.classes))}")
            return None
        if not isinstance(name, str):
            name = str(name)  # e.g. `adapter: [smtp]`: reported as an unknown name below
        if name in self.classes:
            return self.classes[name]
        if name in self._broken:
            self._error(diags, "channels-broken-adapter", (channel, "adapter"), self._broken[name])
            return None
        hint = suggest(name, self.classes)
        self._error(diags, "channels-unknown-adapter", (channel, "adapter"), f"unknown adapter '{name}' "
                    f"(available: {', '.join(sorted(self.classes))})", hint)
        return None


class Channels(_Names):
    """channel name -> adapter instance; with `retry` and `costs` from channels.yaml.

    Without a configuration every channel goes to the `file` adapter (a first run needs no provider
    account). With one, a channel it does not name gets an adapter that fails permanently.
    """

    def __init__(self, config: dict[str, dict] | None = None, *, retry: Retry | None = None,
                 costs: dict[str, Decimal] | None = None, pay_link: str | None = None, where: Where | None = None,
                 source: str | None = None):
        super().__init__(config, where)
        self.source = source  # the file read, named where a failure says what to check (None: no file)
        self.retry = retry or Retry()
        self.costs = dict(costs or {})
        self.pay_link = pay_link  # the payment page, `{customer_id}` filled in per message
        self.instances: dict[str, object] = {}
        self._secrets: set[str] = set()
        diags = Diagnostics()
        self._check_names(diags)
        prepared = {name: self._prepare(name, settings, diags) for name, settings in self.config.items()}
        if diags:
            raise ChannelsError(diags.items)
        try:
            for name, found in prepared.items():
                self.instances[name] = self._create(name, *found)
        except ChannelsError:
            self.close()  # the adapters made so far hold connections nobody will use
            raise

    def __call__(self, channel: str):
        if channel not in self.instances:
            self.instances[channel] = (_Unconfigured(channel, sorted(self.config)) if self.config
                                       else self.classes["file"](channel))
        return self.instances[channel]

    def __repr__(self) -> str:
        mapped = ", ".join(f"{c}={getattr(a, 'name', type(a).__name__)}" for c, a in self.instances.items())
        return f"<Channels {mapped}>"

    def refusals(self) -> "Refusals":
        """What these channels' adapters refuse without calling anyone (`collect run --dry-run`)."""
        return Refusals({name: type(adapter) for name, adapter in self.instances.items()
                         if not isinstance(adapter, _Unconfigured)}, sorted(self.config))

    def redact(self, text: str) -> str:
        """`text` with every secret of this configuration replaced by ***."""
        return redact(str(text), self._secrets)

    def unconfigured(self, channels) -> list[str]:
        """Which of these channels a configuration leaves unmapped (none without a configuration)."""
        return [c for c in channels if self.config and c not in self.config]

    def close(self) -> None:
        for adapter in self.instances.values():
            getattr(adapter, "close", lambda: None)()

    # -- what a policy needs of this configuration ------------------------------------------------------

    def check_plan(self, plan) -> tuple[list[Diagnostic], list[Diagnostic]]:
        """(errors, warnings) of this configuration for a policy's plan, before anything is sent.

        Errors: a step none of whose channels is configured (each of its contacts would fail for good,
        `channel_not_configured`), and what an adapter's optional `check(plan) -> list[str]` says it lacks
        for the plan (e.g. a Twilio WhatsApp template without a Content SID). Warnings: a channel the policy
        sends on that is not configured but whose steps each have a configured channel, naming apart the
        steps that go on from it to a configured channel and those for which it is where the fallback ends
        (no configured channel after it: a contact their earlier channels cannot take fails the step);
        agent task hand-offs with no `agent` adapter (the tasks stay in `collect tasks`); a check that crashed.
        Without a configuration every channel goes to the `file` adapter: nothing is missing.
        """
        errors, warnings = Diagnostics(), Diagnostics()
        if self.config:
            self._check_unconfigured(plan, errors, warnings)
        for channel, adapter in self.instances.items():
            hook = getattr(adapter, "check", None)
            if not callable(hook):
                continue
            name = getattr(adapter, "name", type(adapter).__name__)
            try:
                found = hook(plan)
            except Exception as exc:  # noqa: BLE001 - a plugin may raise anything: say so, do not stop the run
                warnings.warning("adapter-check-failed", f"channels.{channel}: the {name} adapter could not check "
                                 f"the policy: {type(exc).__name__}: {self.redact(str(exc))}",
                                 self._where(("channels", channel), True))
                continue
            for problem in [found] if isinstance(found, str) else list(found or ()):
                errors.error("adapter-check", f"channels.{channel}: {self.redact(str(problem))}",
                             self._where(("channels", channel), True))
        return errors.items, warnings.items

    def _check_unconfigured(self, plan, errors: Diagnostics, warnings: Diagnostics) -> None:
        place = self._where(("channels",), True)
        used: dict[str, list[str]] = {}  # channel -> the steps that send on it, in plan order
        # channel -> the steps with a configured channel after it in their fallback order
        after: dict[str, set[str]] = {}
        escalating: set[str] = set()  # the steps with on_exhausted
        dead: dict[tuple, list[str]] = {}  # a step's channels, none configured -> the steps
        for step in plan_steps(plan):
            on = delivered_on(step)
            for channel in on + (("agent",) if step.get("on_exhausted") and "agent" not in on else ()):
                used.setdefault(channel, []).append(step["id"])
            for i, channel in enumerate(on):
                if any(later in self.config for later in on[i + 1:]):
                    after.setdefault(channel, set()).add(step["id"])
            if step.get("on_exhausted"):
                escalating.add(step["id"])
            if on and on != ("agent",) and len(self.unconfigured(on)) == len(on):
                dead.setdefault(on, []).append(step["id"])
        for on, steps in dead.items():
            one = len(steps) == 1
            who = f"{'step' if one else 'steps'} {', '.join(steps)} {'sends' if one else 'send'} on {', '.join(on)}"
            configured = ("which channels.yaml does not configure" if len(on) == 1
                          else "none of which channels.yaml configures")
            errors.error("step-unconfigured", f"channels: {who}, {configured}: every contact of "
                         f"{'this step' if one else 'these steps'} would fail for good", place,
                         f"add {'`' + on[0] + ': { adapter: ... }`' if len(on) == 1 else 'one of them'} under "
                         f"channels:; `{{ adapter: file }}` writes the messages to outbox/"
                         f"{on[0] if len(on) == 1 else '<channel>'}.jsonl")
        failed_for_good = {s for steps in dead.values() for s in steps}  # reported above
        for channel in self.unconfigured(used):
            steps = [s for s in used[channel] if s not in failed_for_good]
            if not steps:
                continue
            if channel == "agent":
                message = (f"channels: agent is not configured: the agent tasks of {_steps(steps)} stay in "
                           "`collect tasks`, but each hand-off fails (channel_not_configured)")
            else:
                message = (f"channels: {channel} is not configured: each send on it fails (channel_not_configured)"
                           + _after_unconfigured(steps, after.get(channel, set()), escalating))
            warnings.warning("channel-unconfigured", message, place)

    # -- checking one channel -----------------------------------------------------------------------

    def _prepare(self, channel: str, settings, diags: Diagnostics):
        cls = self._adapter_class(channel, settings, diags)
        if not isinstance(settings, dict):
            return None
        before = len(diags.items)
        values = self._expand({k: v for k, v in settings.items() if k != "adapter"}, (channel,), diags)
        if cls is None:
            return None
        self._collect_secrets(values, getattr(cls, "secret_settings", ()))
        model = getattr(cls, "Settings", None)
        # a missing variable would also fail validation: say it once, as the variable
        if len(diags.items) == before and isinstance(model, type) and issubclass(model, BaseModel):
            self._validate(model, values, channel, settings["adapter"], diags)
        return cls, values

    def _expand(self, value, path: tuple, diags: Diagnostics):
        """${VAR} references replaced by the environment's values, which become secrets to mask."""
        if isinstance(value, dict):
            return {k: self._expand(v, path + (k,), diags) for k, v in value.items()}
        if isinstance(value, list):
            return [self._expand(v, path + (i,), diags) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def env(match):
            name = match.group(1)
            found = os.environ.get(name)
            if not found:
                state = "is not set" if found is None else "is empty"
                self._error(diags, "channels-env-unset", path, f"environment variable {name} {state}")
                return ""
            if any(ord(c) < 32 or c == "\x7f" for c in found):  # the value is a secret: never shown
                self._error(diags, "channels-env-control", path, f"environment variable {name} holds a line break "
                            "or another control character (a .env file with Windows line endings?)")
                return ""
            if len(found) >= MIN_MASKED:
                self._secrets.add(found)
            return found

        return _ENV.sub(env, value)

    def _collect_secrets(self, value, extra: tuple = (), secret: bool = False) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self._collect_secrets(item, extra, secret or key in SECRET_KEYS or key in extra)
        elif isinstance(value, list):
            for item in value:
                self._collect_secrets(item, extra, secret)
        elif secret and value not in (None, ""):
            self._secrets.add(str(value))

    def _validate(self, model: type[BaseModel], values: dict, channel: str, adapter: str, diags) -> None:
        try:
            model.model_validate(values, context={"channel": channel})  # a validator may name the channel
        except ValidationError as exc:
            allowed = [f.alias or name for name, f in model.model_fields.items()]
            for error in exc.errors(include_input=False, include_url=False):
                self._setting_error(error, channel, adapter, allowed, diags)

    def _setting_error(self, error: dict, channel: str, adapter: str, allowed: list[str], diags) -> None:
        path = (channel, *error["loc"])
        if error["type"] == "extra_forbidden":
            # a plugin subclassing Adapter without its own Settings has the base's, which takes none
            hint = suggest(str(error["loc"][-1]), allowed) or (f"{adapter} settings: {', '.join(allowed)}" if allowed
                                                               else f"the {adapter} adapter's Settings declares none")
            self._error(diags, "channels-unknown-setting", path, f"unknown setting for the {adapter} adapter", hint,
                        key=True)
        elif error["type"] == "missing":
            self._error(diags, "channels-missing-setting", path, f"the {adapter} adapter needs this setting")
        else:
            # a plugin's validator may quote the value, which may be a secret or come from ${ENV}
            message = self.redact(error["msg"].removeprefix("Value error, "))
            self._error(diags, "channels-bad-setting", path, message)

    def _create(self, channel: str, cls: type, values: dict):
        try:
            return cls(channel, **values)
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; say which channel and why
            raise ChannelsError([Diagnostic("channels-adapter-init", "error", f"channels.{channel}: the "
                                            f"adapter cannot start: {type(exc).__name__}: {self.redact(str(exc))}",
                                            self._where(("channels", channel), True))]) from None


def _steps(steps: list[str]) -> str:
    return f"{'step' if len(steps) == 1 else 'steps'} {', '.join(steps)}"


def _after_unconfigured(steps: list[str], after: set[str], escalating: set[str]) -> str:
    """What the steps that send on an unconfigured channel do when they get to it (each has a configured
    channel, else it is an error). Those with a configured channel after it go on to it. For the others
    it is where their fallback ends: a contact their earlier channels cannot take (no address, no window,
    no consent, a provider's permanent failure) fails there, and so does the step (escalating, with
    on_exhausted)."""
    on = [s for s in steps if s in after]
    last = [s for s in steps if s not in after]
    parts = []
    if on:
        one = len(on) == 1
        parts.append(f"{_steps(on)} {'goes' if one else 'go'} on to {'its' if one else 'their'} next channel")
    if last:
        one = len(last) == 1
        escalate = [s for s in last if s in escalating]
        fails = "the step fails" if one else "they fail"
        if escalate and len(escalate) == len(last):
            fails += " and escalates" if one else " and escalate"
        elif escalate:
            fails += f" ({_steps(escalate)} escalate{'s' if len(escalate) == 1 else ''})"
        parts.append(f"{_steps(last)} {'has' if one else 'have'} no configured channel after it: when "
                     f"{'its' if one else 'their'} earlier channels cannot be used, {fails}")
    if not last:  # as it always said
        return " and " + parts[0]
    return "; " + "; ".join(parts)


def plan_steps(plan):
    """Every step of a plan (a Plan or its dict), stage steps first, then event steps."""
    for stage in plan["stages"]:
        yield from stage["steps"]
    events = plan["events"]
    for event in sorted(events):
        yield from events[event]


def delivered_on(step) -> tuple[str, ...]:
    """The channels a step's contacts go out on, in fallback order: a send step's `send:` channels, a
    webhook step's `webhook`, an escalation's `agent` (its task is handed off there)."""
    action = step["action"]
    if action == "send":
        return tuple(step["channels"])
    if action == "webhook":
        return ("webhook",)
    if action == "escalate":
        return ("agent",)
    return ()


# -- channels.yaml ----------------------------------------------------------------------------------

def _read(path: str | Path):
    """channels.yaml parsed, with the places of its values (None for an empty file); ChannelsError when
    it cannot be read or is not YAML."""
    from ..dsl.yamlload import load_yaml

    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ChannelsError([Diagnostic("channels-read", "error", f"cannot read: {exc.strerror or exc}",
                                        Span(file, 1, 1))]) from None
    except UnicodeDecodeError:
        raise ChannelsError([Diagnostic("channels-read", "error", "cannot read: not UTF-8 text",
                                        Span(file, 1, 1))]) from None
    diags = Diagnostics()
    located = load_yaml(text, file, diags) if text.strip() else None
    if [d.code for d in diags.items] == ["empty-policy"]:  # comments only: as an empty file (no policy here)
        return None
    if diags:
        raise ChannelsError(diags.items)
    return located


def load_channels(path: str | Path | None) -> Channels:
    if path is None:
        return Channels()
    file = str(path)
    located = _read(path)
    diags = Diagnostics()
    data = located.data if located else None
    if not isinstance(data, dict):
        raise ChannelsError([Diagnostic("channels-not-mapping", "error", "expected a `channels:` mapping of "
                                        "channel -> {adapter: ...}", Span(file, 1, 1))])
    _unknown_top_keys(data, located, diags)  # first: a misspelt `chanels:` says so, not only that none is there
    if not isinstance(data.get("channels"), dict) or not data["channels"]:
        # `channels: {}` would configure nothing and so, like no file at all, send everything to outbox/
        empty = "; `channels: {}` names none" if data.get("channels") == {} else ""
        diags.error("channels-not-mapping", f"expected a `channels:` mapping of channel -> {{adapter: ...}}{empty}",
                    located.span(("channels",)) if "channels" in data else Span(file, 1, 1))
        raise ChannelsError(diags.items)
    retry = _retry(data.get("retry"), located, diags)
    costs = _costs(data.get("costs"), located, diags)
    pay_link = _pay_link(data.get("pay_link"), located, diags)
    try:
        channels = Channels(data["channels"], retry=retry, costs=costs, pay_link=pay_link, where=located.span,
                            source=file)
    except ChannelsError as exc:
        raise ChannelsError(diags.items + exc.diagnostics) from None
    if diags:
        channels.close()
        raise ChannelsError(diags.items)
    return channels


class Refusals:
    """The permanent failures the adapters of a configuration return for a message before calling anyone
    (their optional `refuses(channel, message)`, which their `send` asks first): what `collect simulate
    --render` and `collect run --dry-run` can foresee of a delivery without sending. `classes`: channel ->
    adapter class; a channel a configuration leaves out fails as `collect run` fails it
    (`channel_not_configured`); without a configuration every channel goes to the `file` adapter, which
    refuses nothing."""

    def __init__(self, classes: dict[str, type], configured: list[str]):
        self.classes, self.configured = classes, configured

    def __call__(self, message: Message) -> DeliveryResult | None:
        cls = self.classes.get(message.channel)
        if cls is None:
            return _Unconfigured(message.channel, self.configured).send(message) if self.configured else None
        refuses = getattr(cls, "refuses", None)  # optional: a plugin without it refuses nothing up front
        if refuses is None:
            return None
        try:
            found = refuses(message.channel, message)
        except Exception as exc:  # a plugin's bug: a simulation that went on would miss what it refuses
            raise RuntimeError(f"the {getattr(cls, 'name', cls.__name__)} adapter of channel {message.channel} "
                               f"failed to say whether it refuses a message: {type(exc).__name__}: {exc}") from exc
        # only a permanent failure is a refusal: `send` would return anything else as it is (sent, a retry)
        refused = getattr(found, "status", None) == "permanent" and not getattr(found, "account_level", False)
        return found if refused else None


def load_refusals(path: str | Path) -> Refusals:
    """Each channel's adapter class from channels.yaml, for `Refusals`: its `adapter:` names alone, not its
    settings (`collect simulate --render` sends nothing, so their ${ENV} variables need not be set). A
    file without `channels:` (only the costs of a simulation) configures none: nothing is refused.
    ChannelsError, with every problem and its place, as `load_channels` reports them: `channels:` no
    mapping, an unknown channel name, a channel that is no mapping, an unknown adapter or one whose plugin
    cannot be loaded (the simulation would miss what that adapter refuses)."""
    located = _read(path)
    data = located.data if located is not None else None
    channels = data.get("channels") if isinstance(data, dict) else None
    if channels is None:
        return Refusals({}, [])
    if not isinstance(channels, dict):
        raise ChannelsError([Diagnostic("channels-not-mapping", "error", "expected a `channels:` mapping of "
                                        "channel -> {adapter: ...}", located.span(("channels",)))])
    names, diags = _Names(channels, located.span), Diagnostics()
    names._check_names(diags)
    classes = {channel: names._adapter_class(channel, settings, diags) for channel, settings in names.config.items()}
    if diags:
        raise ChannelsError(diags.items)
    return Refusals(classes, sorted(classes))


def load_costs(path: str | Path) -> dict[str, Decimal]:
    """The `costs:` of channels.yaml, checked as `load_channels` checks it, and nothing else of the file
    (`collect simulate --channels` sends nothing: its adapters and settings need not be valid, nor their
    ${ENV} variables set). ChannelsError with every problem of `costs:`, each with its place. A top-level
    key that looks like a misspelt `costs` is one too: the costs would silently be left out. No `costs:`
    (or an empty file): no costs."""
    located = _read(path)
    if located is None or located.data is None:  # empty, comments only, or `~`
        return {}
    data, diags = located.data, Diagnostics()
    if not isinstance(data, dict):
        raise ChannelsError([Diagnostic("channels-not-mapping", "error", "expected a mapping with `channels:` "
                                        "and `costs:` (channel -> cost per message)", Span(str(path), 1, 1))])
    _unknown_top_keys(data, located, diags)  # a misspelt `costs` would leave the costs out silently
    costs = _costs(data.get("costs"), located, diags)
    if diags:
        raise ChannelsError(diags.items)
    return costs


def _unknown_top_keys(data: dict, located, diags: Diagnostics) -> None:
    for key in data:
        if key not in TOP_KEYS:
            diags.error("channels-unknown-key", f"unknown key '{key}'", located.span((key,), prefer_key=True),
                        suggest(str(key), TOP_KEYS) or f"keys: {', '.join(TOP_KEYS)}")


def load_pay_link(path: str | Path) -> str | None:
    """The `pay_link:` of channels.yaml, checked as `load_channels` checks it, and nothing else of the file
    (`collect simulate --render` builds messages, it sends none); None when the file names none."""
    located = _read(path)
    if located is None or not isinstance(located.data, dict):  # load_costs has said what is wrong with it
        return None
    diags = Diagnostics()
    link = _pay_link(located.data.get("pay_link"), located, diags)
    if diags:
        raise ChannelsError(diags.items)
    return link


def _retry(value, located, diags: Diagnostics) -> Retry:
    if value is None:
        return Retry()
    if not isinstance(value, dict):
        diags.error("channels-bad-retry", "retry: expected {attempts: 3, backoff: 30s}", located.span(("retry",)))
        return Retry()
    for key in value:
        if key not in RETRY_KEYS:
            diags.error("channels-bad-retry", f"retry.{key}: unknown key", located.span(("retry", key), True),
                        suggest(str(key), RETRY_KEYS) or f"keys: {', '.join(RETRY_KEYS)}")
    attempts = value.get("attempts", Retry.attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        diags.error("channels-bad-retry", "retry.attempts: expected a whole number of tries, 1 or more",
                    located.span(("retry", "attempts")))
        attempts = Retry.attempts
    try:
        backoff = seconds(value.get("backoff", Retry.backoff))
        if backoff < 0:
            raise ValueError("a wait cannot be negative; write 30s, 2m or 0s")
    except ValueError as exc:
        diags.error("channels-bad-retry", f"retry.backoff: {exc}", located.span(("retry", "backoff")))
        backoff = Retry.backoff
    return Retry(attempts, backoff)


def _pay_link(value, located, diags: Diagnostics) -> str | None:
    """The customer's payment page: an https URL where `{customer_id}` is the only placeholder."""
    if value is None:
        return None
    import string

    fields = None
    if isinstance(value, str):
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError:  # an unmatched brace
            fields = None
    if fields is None or not fields <= {"customer_id"} or not value.startswith(("https://", "http://")):
        diags.error("channels-bad-pay-link", "pay_link: expected the URL of the payment page, with {customer_id} "
                    "where the customer's id goes, e.g. https://pay.acme.com/c/{customer_id}",
                    located.span(("pay_link",)))
        return None
    return value


def pay_link_problem(channels: Channels, plan) -> str | None:
    """Why `collect run` must not start: a channel reaches customers through a real provider, or is
    `letter` (its file goes to a print-and-mail service), its templates put {{ pay_link }} in messages,
    and channels.yaml names no payment page (customers would get the example link)."""
    import json
    import re

    if channels.pay_link is not None:
        return None
    # outbox files only show what would be sent: the example link does no harm there
    real = {name for name, settings in channels.config.items()
            if name == "letter" or not (isinstance(settings, dict) and settings.get("adapter") == "file")}
    linked = sorted({channel for template in plan["templates"].values() for channel, part in template.items()
                     if channel in real and re.search(r"\bpay_link\b", json.dumps(
                         part, default=lambda o: dict(o) if hasattr(o, "keys") else list(o)))})
    if linked:
        return (f"the policy's {', '.join(linked)} templates use {{{{ pay_link }}}}, and channels.yaml has no "
                "pay_link: add pay_link: https://<your payment page>/{customer_id}")
    return None


def _costs(value, located, diags: Diagnostics) -> dict[str, Decimal]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        diags.error("channels-bad-cost", "costs: expected a mapping of channel -> cost per message",
                    located.span(("costs",)))
        return {}
    costs = {}
    known = _known_channels()
    priced = [name for name in known if name != "agent"]  # what a cost may be given for
    for channel, amount in value.items():
        if str(channel) not in known:  # a misspelt channel would silently cost nothing
            diags.error("channels-bad-cost", f"costs.{channel}: unknown channel '{channel}' (available: "
                        f"{', '.join(priced)})", located.span(("costs", channel), True), suggest(str(channel), priced))
            continue
        if str(channel) == "agent":  # neither report nor simulate prices a task: the cost would be ignored
            diags.error("channels-bad-cost", "costs.agent: an agent task is no message and has no cost in the "
                        "reports; give the costs of the message channels", located.span(("costs", channel), True))
            continue
        try:
            if isinstance(amount, bool):
                raise InvalidOperation
            cost = Decimal(str(amount))
            if not cost.is_finite() or cost < 0:
                raise InvalidOperation
        except InvalidOperation:
            diags.error("channels-bad-cost", f"costs.{channel}: expected a cost of 0 or more, such as 0.045",
                        located.span(("costs", channel)))
            continue
        # as the store keeps money (MONEY_PLACES): a cost of 1e30 passed, then broke simulate's summary and
        # every later `collect report` of the contacts it was stored on
        if cost >= MAX_COST or cost != cost.quantize(Decimal(1).scaleb(-MONEY_PLACES)):
            diags.error("channels-bad-cost", f"costs.{channel}: {amount} is no cost per message: at most "
                        f"{MAX_COST - Decimal(1).scaleb(-MONEY_PLACES):,f}, with at most {MONEY_PLACES} decimal places",
                        located.span(("costs", channel)))
            continue
        costs[str(channel)] = cost
    return costs
