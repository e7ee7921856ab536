"""The `smtp` adapter: email through an SMTP server (smtplib), STARTTLS or implicit TLS, optional login.

A message with `html` goes as multipart/alternative (text first, HTML second), so every client shows
something. The Message-ID is derived from the contact key: a repeated delivery of the same contact (a
retry after a timeout, a tick recovering a crash) carries the same Message-ID, which lets mail systems
and archives recognise the duplicate. One connection is kept open across sends and checked with NOOP
before reuse; any failure drops it, so the next send starts clean.

Replies: 5xx is permanent, 4xx and lost connections are transient (RFC 5321 4.2.1). What refuses the
channel rather than the message is account-level (the runner stops the channel for the tick and the
message waits): a refused login (535), "authentication required" or "STARTTLS first" (530), a server
that refuses the connection or lacks STARTTLS/AUTH, and TLS that cannot work with these settings (a
certificate nobody trusts, TLS on a plain port, a `ca_file` that cannot be read). A TLS handshake the
server drops (EOF, reset) is a lost connection like any other: transient.

Bodies are 7-bit: non-ASCII text goes quoted-printable (or base64, whichever is shorter), which every
server takes, instead of 8-bit data that RFC 6152 allows only with BODY=8BITMIME.
"""

from __future__ import annotations

import email.policy
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from pydantic import Field, SecretStr, model_validator

from .base import Adapter, DeliveryResult, Message, Seconds, Settings, secret

# RFC 5322 headers (non-ASCII ones RFC 2047-encoded) and 7-bit bodies: quoted-printable or base64
POLICY = email.policy.default.clone(cte_type="7bit")
# The connection was closed or reset during the TLS handshake: lost, like a reset TCP connection.
TLS_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
# "Authentication required" (RFC 4954) and "Must issue a STARTTLS command first" (RFC 3207): the settings.
REFUSED_CHANNEL = 530


class CaFileError(OSError):
    """`ca_file` cannot be read: no connection can be verified."""


class SmtpSettings(Settings):
    host: str
    port: int | None = Field(None, ge=1, le=65535)  # default: 465 with ssl, 587 with starttls, else 25
    starttls: bool | None = None  # default: true unless ssl
    ssl: bool = False  # implicit TLS from the first byte (SMTPS, usually port 465)
    from_: str = Field(alias="from")  # "Billing <billing@example.com>"
    reply_to: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    timeout: Seconds = 30.0
    verify: bool = True  # check the server's certificate (turn off only for a test server)
    ca_file: str | None = None  # a private CA's certificate (PEM) to trust
    message_id_domain: str | None = None  # default: the domain of `from`

    @model_validator(mode="after")
    def _consistent(self):
        if self.ssl and self.starttls:
            raise ValueError("choose `ssl` (implicit TLS) or `starttls`, not both")
        if bool(self.username) != bool(self.password and secret(self.password)):
            raise ValueError("`username` and `password` go together")
        # smtplib sends the login as ASCII: another character fails every message at the first send
        if not (self.username or "").isascii() or not secret(self.password or SecretStr("")).isascii():
            raise ValueError("`username` and `password` can hold only ASCII characters (the SMTP login of "
                             "smtplib sends no others): use an app password, or another account")
        return self

    @property
    def use_starttls(self) -> bool:
        return not self.ssl if self.starttls is None else self.starttls

    @property
    def effective_port(self) -> int:
        return self.port or (465 if self.ssl else 587 if self.use_starttls else 25)


def message_id(key: str, domain: str) -> str:
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}.collect@{domain}>"


class SmtpChannel(Adapter):
    name = "smtp"
    supports_html = True
    supports_templates = False
    free_text = True
    Settings = SmtpSettings

    def __init__(self, channel: str, **settings):
        super().__init__(channel, **settings)
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def refuses(cls, channel: str, message: Message) -> DeliveryResult | None:
        if not message.recipient:
            return DeliveryResult.permanent("no_recipient", f"no email address for {channel}")
        return None

    def send(self, message: Message) -> DeliveryResult:
        if (refused := self.refuses(self.channel, message)) is not None:
            return refused
        try:
            mail = self.compose(message)
        except ValueError as exc:  # e.g. a line break in a header: never let it reach the wire
            return DeliveryResult.permanent("bad_message", self.scrub(str(exc)))
        try:
            smtp = self.connection()
        except Exception as exc:
            self.close()
            return self.failure(exc, connecting=True)
        try:
            smtp.send_message(mail, to_addrs=[message.recipient])
        except Exception as exc:
            self.close()
            return self.failure(exc)
        return DeliveryResult.sent(mail["Message-ID"])

    def compose(self, message: Message) -> EmailMessage:
        s = self.settings
        mail = EmailMessage(policy=POLICY)
        mail["From"] = s.from_
        mail["To"] = message.recipient
        mail["Subject"] = " ".join((message.subject or "").split())
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id(message.key, self.domain())
        if s.reply_to:
            mail["Reply-To"] = s.reply_to
        mail["X-Collect-Key"] = message.key  # ties bounces and replies back to the contact
        mail.set_content(message.body)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        return mail

    def domain(self) -> str:
        address = parseaddr(self.settings.from_)[1]
        return self.settings.message_id_domain or address.rpartition("@")[2] or "collect.invalid"

    # -- connection ---------------------------------------------------------------------------------

    def connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (smtplib.SMTPException, OSError):
                pass
            self.close()
        self._smtp = self.connect()
        return self._smtp

    def connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.ssl:
            smtp = smtplib.SMTP_SSL(s.host, s.effective_port, timeout=s.timeout, context=self.tls())
        else:
            smtp = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout)
        try:
            if s.use_starttls:
                smtp.starttls(context=self.tls())
            if s.username:
                smtp.login(s.username, secret(s.password))
        except BaseException:
            smtp.close()
            raise
        return smtp

    def tls(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.settings.ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise CaFileError(f"cannot read the CA certificates in {self.settings.ca_file} (`ca_file`): "
                              f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}") from exc
        if not self.settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    # -- errors -------------------------------------------------------------------------------------

    def failure(self, exc: Exception, connecting: bool = False) -> DeliveryResult:
        """What an exception means. While `connecting` (greeting, EHLO, STARTTLS, login) no message is
        involved yet: a refusal there refuses the channel, whatever is sent."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = next(iter(exc.recipients.values()), (0, b""))
            return self.reply(code, text)
        # RFC 4954: 454 is a temporary authentication failure (the server's auth backend is down), so a
        # 4xx on login is retried like any 4xx; only a refusal (535 etc.) means the credentials are wrong
        if isinstance(exc, smtplib.SMTPAuthenticationError) and not 400 <= exc.smtp_code < 500:
            return DeliveryResult.account("auth", f"the SMTP server refused the login (SMTP {exc.smtp_code}): "
                                                  "check username and password")
        if isinstance(exc, smtplib.SMTPResponseException):
            return self.reply(exc.smtp_code, exc.smtp_error, connecting)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            if connecting:  # no STARTTLS, or no AUTH: the server cannot work with these settings
                return DeliveryResult.account("unsupported", f"{self.settings.host}: {self.scrub(str(exc))}")
            return DeliveryResult.permanent("unsupported", self.scrub(str(exc)))  # SMTPUTF8, for this address
        if isinstance(exc, CaFileError):
            return DeliveryResult.account("tls", self.scrub(str(exc)))
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, TLS_DROPPED):
            # a certificate the server cannot prove, or TLS spoken to a plain port: the settings, for every
            # message alike
            if isinstance(exc, ssl.SSLCertVerificationError):
                return DeliveryResult.account("tls", f"cannot verify the TLS certificate of {self.settings.host} "
                                              f"({self.scrub(str(exc.verify_message or exc))}): if a private CA "
                                              f"signed it, give that CA's PEM file as `ca_file`")
            return DeliveryResult.account("tls", f"TLS with {self.settings.host}:{self.settings.effective_port} "
                                          f"failed: {self.scrub(str(exc))}: check `port`, `ssl` and `starttls`")
        if isinstance(exc, (smtplib.SMTPException, OSError)):
            return DeliveryResult.transient("network", f"cannot talk to {self.settings.host}:"
                                            f"{self.settings.effective_port}: {type(exc).__name__}: "
                                            f"{self.scrub(str(exc))}")
        raise exc

    def reply(self, code: int, text, connecting: bool = False) -> DeliveryResult:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        error = f"SMTP {code}: {self.scrub(' '.join(text.split()))}"
        if code == REFUSED_CHANNEL or (connecting and 500 <= code < 600):
            return DeliveryResult.account(str(code), f"{self.settings.host} refused the channel: {error}: check "
                                          "`host`, `port`, `starttls`, `username` and `password`")
        if 500 <= code < 600:
            return DeliveryResult.permanent(str(code), error)
        return DeliveryResult.transient(str(code), error)
