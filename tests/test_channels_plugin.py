"""A third-party channel (examples/channel-plugin) installed as a package is found through the entry point
group `collect.channels` and sends. It is installed into a temporary folder, never into the test's own
environment."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collect.adapters.base import Message
from collect.adapters.registry import load_adapter
from collect.engine.channels import Channels

PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "channel-plugin"


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The plugin pip-installed into tmp_path/site (built from a copy, so the checkout stays clean)."""
    source, target = tmp_path / "src", tmp_path / "site"
    shutil.copytree(PLUGIN, source)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--target", str(target), str(source)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"pip could not run offline here: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip cannot build the example plugin offline here (needs setuptools and wheel): {last}")
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    yield target
    sys.modules.pop("collect_echo_channel", None)


def test_an_installed_plugin_is_registered_and_sends(installed, capsys):
    cls = load_adapter("echo")
    assert cls.__module__ == "collect_echo_channel"
    assert Path(sys.modules[cls.__module__].__file__).is_relative_to(installed)  # not some other copy
    channels = Channels({"sms": {"adapter": "echo", "prefix": "[sms] ", "fail_for": ["+15005550001"]}})
    sent = channels("sms").send(Message(key="k1", channel="sms", customer_id="C1", invoice_ids=("F1",),
                                        recipient="+51987654321", body="Hola Ana"))
    refused = channels("sms").send(Message(key="k2", channel="sms", customer_id="C1", invoice_ids=("F1",),
                                           recipient="+15005550001", body="Hola"))
    assert (sent.status, sent.provider_id) == ("sent", "k1") and refused.status == "permanent"
    assert capsys.readouterr().out == "[sms] sms -> +51987654321: Hola Ana\n"


def test_a_plugin_setting_typo_is_reported_like_a_builtin_one(installed):
    from collect.engine.channels import ChannelsError

    with pytest.raises(ChannelsError, match="channels.sms.prefx: unknown setting for the echo adapter"):
        Channels({"sms": {"adapter": "echo", "prefx": ">"}})


def test_the_plugin_name_is_a_channel_the_compiler_knows(installed):
    from collect.engine.compiler import known_channels

    assert "echo" in known_channels()


def _plugin_policy(tmp_path, profile: str, tz: str, country: str, steps: str, caps: str = ""):
    import textwrap

    from collect.engine.compiler import compile_policy
    from collect.engine.runtime import Runtime

    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(f"""\
        policy: t
        timezone: {tz}
        currency: USD
        calendar: {{ country: {country} }}
        compliance: [{profile}]
        windows: {{ default: {{ mon-sun: "09:00-12:00" }}, holidays: open }}
        {caps}
        catch_up: all
        templates: {{ m: {{ echo: "hola" }} }}
        stages:
          s:
            when: true
            steps:
        """) + steps)
    result = compile_policy(path)
    assert result.plan is not None, [d.render() for d in result.diagnostics.sorted()]
    return Runtime(result.plan)


def _sent(rt, country: str, tz: str, consents) -> list:
    import datetime as dt
    from decimal import Decimal

    from collect.engine.simulate import simulate, start_moment
    from collect.engine.state import CustomerInfo, CustomerState, InvoiceInfo

    state = CustomerState(CustomerInfo("c1", name="Ana", timezone=tz, country=country, consents=consents))
    state.invoices["F1"] = InvoiceInfo("F1", "c1", Decimal("100"), Decimal("100"), dt.date(2026, 11, 23))
    result = simulate(rt, {"c1": state}, start_moment(dt.date(2026, 11, 20), rt.timezone), 10)
    return sorted(d.at for d in result.decisions if d.status == "sent")


def test_a_law_and_the_caps_cover_a_plugin_s_channel_as_any_other_contact(installed, tmp_path):
    """A plugin's channel reaches the debtor: Colombia's law asks for the debtor's consent to it, Chile's
    limits on messages other than calls count it, and a policy cap on `any` channel counts it."""
    one = "      - { id: e1, at: due+1d 10:00, send: echo, template: m }\n"
    assert _sent(_plugin_policy(tmp_path, "co-ley-2300", "America/Bogota", "CO", one), "CO", "America/Bogota",
                 frozenset()) == []
    five = "".join(f"      - {{ id: e{d}, at: due+{d}d 10:00, send: echo, template: m }}\n" for d in range(1, 6))
    chile = _sent(_plugin_policy(tmp_path, "cl-sernac", "America/Santiago", "CL", five), "CL", "America/Santiago", None)
    assert len(chile) == 2 and (chile[1].date() - chile[0].date()).days >= 3  # 2 a week, two clear days apart
    capped = _plugin_policy(tmp_path, "us-reg-f", "America/New_York", "US", five,
                            caps="caps: [{ channel: any, max: 1, per: 7d }]")
    assert len(_sent(capped, "US", "America/New_York", None)) == 1
