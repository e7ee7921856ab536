"""The `twilio_voice` adapter: a phone call that reads the rendered message aloud.

POST {base_url}/2010-04-01/Accounts/{account_sid}/Calls.json with To, From and a `Twiml` form field
`<Response><Say language=".." voice="..">text</Say></Response>`. The text is XML-escaped, so a customer
name like "Smith & Sons <Ltd>" cannot break or inject TwiML. The Say language comes from the message
language: `languages` in the settings first, then a table of locales Twilio's voices speak, then
`default_language`.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from pydantic import Field, SecretStr

from .base import DeliveryResult, HttpUrl, Message, Seconds, Settings
from .twilio import TwilioBase

# A locale <Say> supports for each bare language (Twilio TwiML <Say> reference, `language` attribute:
# https://www.twilio.com/docs/voice/twiml/say); a region of the customer's own (es-PE) is not used
# because most voices do not speak it; map it with `languages` when yours does.
SAY_LOCALES = {"en": "en-US", "es": "es-MX", "pt": "pt-BR", "fr": "fr-FR", "de": "de-DE", "it": "it-IT",
               "nl": "nl-NL", "ja": "ja-JP", "ko": "ko-KR", "zh": "zh-CN", "ru": "ru-RU", "pl": "pl-PL"}


class TwilioVoiceSettings(Settings):
    account_sid: str
    auth_token: SecretStr
    from_: str = Field(alias="from")  # the Twilio number that calls
    status_callback: HttpUrl | None = None  # URL Twilio calls with the call's status
    voice: str | None = None  # e.g. Polly.Mia, Google.es-US-Standard-A; default: Twilio's
    languages: dict[str, str] = {}  # message language -> Say language, e.g. {es: es-US, es-PE: es-US}
    default_language: str = "en-US"
    loop: int = Field(1, ge=1, le=5)  # how many times the text is read
    base_url: HttpUrl = "https://api.twilio.com"
    timeout: Seconds = 10.0
    ca_file: str | None = None  # PEM file of a private CA to trust (default: SSL_CERT_FILE, else certifi's)


def say_language(language: str | None, overrides: dict[str, str], default: str) -> str:
    if not language:
        return default
    code = language.replace("_", "-")
    base = code.split("-")[0].lower()
    for candidate in (code, base):
        if candidate in overrides:
            return overrides[candidate]
    return SAY_LOCALES.get(base, default)


class TwilioVoiceChannel(TwilioBase):
    name = "twilio_voice"
    supports_html = False
    supports_templates = False
    free_text = True
    Settings = TwilioVoiceSettings

    @classmethod
    def refuses(cls, channel: str, message: Message) -> DeliveryResult | None:
        if not message.recipient:
            return DeliveryResult.permanent("no_recipient", f"no phone number for {channel}")
        if not message.body.strip():
            return DeliveryResult.permanent("empty_body", "nothing to say: the rendered message is empty")
        return None

    def send(self, message: Message) -> DeliveryResult:
        if (refused := self.refuses(self.channel, message)) is not None:
            return refused
        form = {"To": message.recipient, "From": self.settings.from_, "Twiml": self.twiml(message),
                "StatusCallback": self.settings.status_callback}
        return self.create("Calls", form)

    def twiml(self, message: Message) -> str:
        s = self.settings
        attributes = {"language": say_language(message.language, s.languages, s.default_language),
                      "voice": s.voice, "loop": str(s.loop) if s.loop != 1 else None}
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in attributes.items() if v)
        return f"<Response><Say{attrs}>{escape(message.body)}</Say></Response>"
