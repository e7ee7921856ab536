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
