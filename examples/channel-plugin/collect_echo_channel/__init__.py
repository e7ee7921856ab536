"""An example channel plugin for collect: it prints each message on standard output.

A channel is a class with a `name`, capability flags and `send(message) -> DeliveryResult`, constructed
as `EchoChannel(channel, **settings)` with the channel's settings from channels.yaml. Subclassing
`collect.adapters.base.Adapter` and giving a `Settings` model is optional but buys checked settings
(unknown or missing keys are reported with their place in channels.yaml) and a safe repr().
"""

from __future__ import annotations

import sys

from collect.adapters.base import Adapter, DeliveryResult, Message, Settings


class EchoSettings(Settings):
    prefix: str = "[echo] "
    fail_for: list[str] = []  # recipients to refuse, to try out fallbacks


class EchoChannel(Adapter):
    name = "echo"
    supports_html = False
    supports_templates = False
    free_text = True
    Settings = EchoSettings

    def send(self, message: Message) -> DeliveryResult:
        # one attempt, no sleeping: the runner decides about retries and fallbacks
        if message.recipient in self.settings.fail_for:
            return DeliveryResult.permanent("refused", f"{message.recipient} is in fail_for")
        print(f"{self.settings.prefix}{self.channel} -> {message.recipient}: {message.body}", file=sys.stdout)
        return DeliveryResult.sent(message.key)
