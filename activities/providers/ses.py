"""Email through Amazon SES v2 (`SendEmail` with raw content), with boto3.

One `sesv2` client per provider (boto3 clients are thread-safe); each call
runs in a thread (`asyncio.to_thread`) since boto3 is synchronous. We chose
boto3 over aiobotocore: it is the library AWS maintains, it is already what
operators' tooling uses, and one blocking HTTPS call per send in a thread
costs nothing next to the provider's latency.

Request (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html)::

    SendEmail(FromEmailAddress=<sender>, Destination={"ToAddresses": [<recipient>]},
              Content={"Raw": {"Data": wire_bytes(email), DKIM-signed if DKIM_KEYS has
                       a key for the sender's domain}},
              ConfigurationSetName=SES_CONFIGURATION_SET (when set),
              EmailTags=[{"Name": "journey", …}, {"Name": "step", …}])

The raw message keeps our headers (Message-ID, List-Unsubscribe,
List-Unsubscribe-Post); SES answers `MessageId`, which `deliver` returns and
the SNS notifications name as `mail.messageId`. SES has no idempotency token:
the message log row written before the call stops a retry from sending twice;
an ambiguous failure (a timeout after SES took the message) may send twice.

Errors (botocore's own retries are off: Temporal owns retries):

- `MessageRejected` (e.g. an unverified sender), `MailFromDomainNotVerifiedException`,
  `AccountSuspendedException`, `SendingPausedException`, `BadRequestException`,
  `NotFoundException` (no such configuration set), refused credentials and
  any other 4xx: permanent, the step fails naming the SES error code;
- `TooManyRequestsException`, `LimitExceededException`, throttling, 5xx,
  endpoint connection errors and timeouts: transient (`Retry-After` honoured
  when SES sends one).

SES reports bad recipients later (a bounce notification through SNS), never
in the `SendEmail` answer, so no error here is `invalid_recipient`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from activities.providers.dkim_signing import DkimSigner
from activities.providers.errors import DeliveryError, parse_retry_after, provider_text
from activities.providers.messages import OutgoingEmail, wire_bytes

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sesv2.type_defs import MessageTagTypeDef, SendEmailRequestTypeDef

TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "LimitExceededException",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "ServiceUnavailable",
        "InternalFailure",
    }
)
"""SES error codes worth retrying (with any 5xx and 429)."""
TAG_HEADERS = {"journey": "X-Journey", "step": "X-Journey-Step"}
"""EmailTags sent with each message (SES event records carry them), from our headers."""
_TAG_VALUE_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")
TAG_VALUE_LIMIT = 256


class SesEmailProvider:
    """Sends raw MIME messages through Amazon SES v2 (see the module docstring)."""

    name = "ses"

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        configuration_set: str | None = None,
        timeout: float = 10.0,
        dkim: DkimSigner | None = None,
    ) -> None:
        """Create the SES client (credentials from the standard AWS chain).

        Args:
            region: AWS region (default: the AWS chain's: AWS_DEFAULT_REGION, the profile).
            endpoint_url: Another endpoint (a VPC endpoint, or moto in tests).
            configuration_set: Configuration set every message is sent with.
            timeout: Seconds allowed for connecting and for SES's answer.
            dkim: Signs each message whose sender's domain has a key.

        Raises:
            ValueError: no region is configured anywhere.
        """
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        )
        session = boto3.session.Session(region_name=region)
        if not session.region_name:
            raise ValueError(
                "EMAIL_PROVIDER=ses needs SES_REGION (or AWS_DEFAULT_REGION), e.g. eu-west-1"
            )
        self.region = session.region_name
        self._client: SESV2Client = session.client(
            "sesv2", endpoint_url=endpoint_url, config=config
        )
        self._configuration_set = configuration_set
        self._dkim = dkim

    async def deliver(self, email: OutgoingEmail) -> str:
        """Send the message once; return SES's `MessageId`.

        Raises:
            DeliveryError: classified as described in the module docstring.
        """
        message = wire_bytes(email)
        if self._dkim is not None:
            message = self._dkim.sign(message, sender=email.from_address)
        try:
            answer = await asyncio.to_thread(self._send, email, message)
        except ClientError as error:
            raise _client_error(error) from error
        except (BotoConnectionError, HTTPClientError) as error:  # refused, reset, timed out
            raise DeliveryError(
                f"SES unreachable: {type(error).__name__}: {provider_text(str(error))}",
                permanent=False,
            ) from error
        except BotoCoreError as error:  # no credentials, bad parameters
            raise DeliveryError(
                f"SES request not made: {type(error).__name__}: {provider_text(str(error))}",
                permanent=True,
            ) from error
        return answer

    def _send(self, email: OutgoingEmail, message: bytes) -> str:
        request: SendEmailRequestTypeDef = {
            "FromEmailAddress": email.from_address,
            "Destination": {"ToAddresses": [email.to_address]},
            "Content": {"Raw": {"Data": message}},
            "EmailTags": email_tags(email.headers),
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        return self._client.send_email(**request)["MessageId"]


def email_tags(headers: Mapping[str, str]) -> list[MessageTagTypeDef]:
    """The `EmailTags` of a message: journey and step, in the characters SES allows."""
    return [
        {"Name": name, "Value": _TAG_VALUE_FORBIDDEN.sub("_", headers[header])[:TAG_VALUE_LIMIT]}
        for name, header in TAG_HEADERS.items()
        if headers.get(header)
    ]


def _client_error(error: ClientError) -> DeliveryError:
    details = error.response.get("Error", {})
    code = details.get("Code", "Unknown")
    metadata = error.response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode")
    text = f"SES answered {code}: {provider_text(details.get('Message', ''))}"
    if code in TRANSIENT_CODES or status == 429 or (status is not None and status >= 500):
        retry_after = metadata.get("HTTPHeaders", {}).get("retry-after")
        return DeliveryError(
            text, permanent=False, retry_after=parse_retry_after(retry_after), status_code=status
        )
    return DeliveryError(text, permanent=True, status_code=status)
