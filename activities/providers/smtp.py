"""Email over SMTP (aiosmtplib), one connection per message."""

from __future__ import annotations

import re

import aiosmtplib

from activities.providers.dkim_signing import DkimSigner
from activities.providers.errors import DeliveryError, provider_text
from activities.providers.messages import OutgoingEmail, needs_smtputf8, wire_bytes

INVALID_RECIPIENT_CODES = frozenset({550, 553})
"""RCPT reply codes that mean "no such mailbox" / "mailbox name not allowed"."""

_ENHANCED_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


class SmtpEmailProvider:
    """Sends email through an SMTP server (a relay, an ESP's SMTP endpoint, Mailpit…).

    The message is `wire_bytes(email)`, DKIM-signed when `dkim` holds a key
    for the sender's domain. Its Message-ID is derived from the idempotency
    key, so a retry after an ambiguous failure (connection lost after the
    server accepted the data) sends the same Message-ID and receivers or the
    ESP can drop the copy. SMTP itself has no idempotency.

    Errors (raised as `DeliveryError`; nothing is retried here):
        - connection refused or lost, timeouts: transient;
        - 4xx replies: transient;
        - 5xx replies: permanent (e.g. 535 authentication failed, 554 rejected);
        - 550 or 553 to RCPT: permanent and `invalid_recipient`, unless an
          enhanced status code says the reason is not the address (only
          `5.1.x` — bad mailbox, domain or syntax — or none counts), so that
          e.g. `550 5.7.1 relaying denied` does not suppress the contact;
        - STARTTLS, AUTH or SMTPUTF8 not offered by the server: permanent
          (a configuration problem).
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_tls: bool = False,
        timeout: float = 10.0,
        dkim: DkimSigner | None = None,
    ) -> None:
        """Configure the server connection.

        Args:
            host: SMTP server host name or address.
            port: SMTP server port (25, 587 with STARTTLS, 465 with implicit TLS).
            username: Login name; AUTH is used only when given.
            password: Login password (required with `username`).
            starttls: Upgrade the connection with STARTTLS (required to succeed);
                when False, STARTTLS is never attempted.
            use_tls: Connect with implicit TLS (SMTPS).
            timeout: Seconds allowed for the connection and each SMTP command.
            dkim: Signs each message whose sender's domain has a key.

        Raises:
            ValueError: both `starttls` and `use_tls`, or a username without a password.
        """
        if starttls and use_tls:
            raise ValueError("choose either STARTTLS or implicit TLS, not both")
        if (username is None) != (password is None):
            raise ValueError("SMTP username and password go together")
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._use_tls = use_tls
        self._timeout = timeout
        self._dkim = dkim

    async def deliver(self, email: OutgoingEmail) -> str:
        """Send the message once; return its Message-ID.

        Raises:
            DeliveryError: the server could not be reached or refused the message.
        """
        message = wire_bytes(email)
        if self._dkim is not None:
            message = self._dkim.sign(message, sender=email.from_address)
        try:
            await aiosmtplib.send(
                message,
                sender=email.from_address,
                recipients=[email.to_address],
                mail_options=["SMTPUTF8"] if needs_smtputf8(email) else None,
                hostname=self.host,
                port=self.port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                use_tls=self._use_tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise _recipient_refused(error.recipients[0]) from error
        except aiosmtplib.SMTPResponseException as error:
            raise _reply_error(error.code, error.message) from error
        except OSError as error:  # refused, lost, timed out (aiosmtplib's are OSErrors too)
            raise DeliveryError(
                f"SMTP server {self.host}:{self.port} unavailable: "
                f"{type(error).__name__}: {provider_text(str(error))}",
                permanent=False,
            ) from error
        except aiosmtplib.SMTPException as error:  # STARTTLS, AUTH or SMTPUTF8 not offered
            raise DeliveryError(
                f"SMTP server lacks what is configured: {provider_text(error.message)}",
                permanent=True,
            ) from error
        return email.message_id


def _reply_error(code: int, text: str) -> DeliveryError:
    return DeliveryError(
        f"SMTP server replied {code}: {provider_text(text)}",
        permanent=code >= 500,
        status_code=code,
    )


def _recipient_refused(refusal: aiosmtplib.SMTPRecipientRefused) -> DeliveryError:
    enhanced = _ENHANCED_STATUS.match(refusal.message)
    if refusal.code in INVALID_RECIPIENT_CODES and (enhanced is None or enhanced[2] == "1"):
        return DeliveryError(
            f"SMTP server refused the recipient ({refusal.code}): {provider_text(refusal.message)}",
            permanent=True,
            invalid_recipient=True,
            status_code=refusal.code,
        )
    return _reply_error(refusal.code, refusal.message)
