"""`journeys preview`: every message of a journey, rendered for a contact and checked.

Rendering is the send activity's own (`MessagingActivities.compose`): the
templates, the brand, UTM tagging, the footer with the unsubscribe link and
postal address, the SMS opt-out line. Per message it checks:

- it renders (a Liquid error names the template file);
- the subject and preview text are not empty (email);
- every link carries the UTM parameters (`UTM_KEYS`), except the unsubscribe link;
- a marketing email carries the unsubscribe link, a marketing SMS the opt-out
  line (a service message carries the service footer instead);
- an email carries the brand's postal address;
- nothing is left unrendered (`{{` or `{%`).

Fallbacks: a template falls back for a contact field when the contact lacks the
field and the message changes once the field is given (rendered again with a
marker value). So a fallback is reported only where a template really uses the
field, whatever way it does it (`default:` filter, `{% if %}` block).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from activities.messaging import ComposedMessage, MessagingActivities
from models.messages import MessageCategory, SendRequest
from models.tables import Contact
from rules.templates import TemplateError, links_in
from starter.qa.catalog import MessageStep
from starter.services.operations import OperationError

if TYPE_CHECKING:
    from workflows.toolkit import Journey

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content")
"""The UTM parameters every link of a message must carry."""
OPTIONAL_FIELDS = ("first_name", "company")
"""Contact fields a template may use that a contact may not have."""
_MARKER = "QA-MARKER"


class ChecksFailed(OperationError):
    """A message failed its checks; the message names the step and the reason."""


@dataclass(frozen=True)
class LinkCheck:
    """A link of a message and whether it carries every UTM parameter."""

    url: str
    utm: bool


@dataclass
class StepPreview:
    """One message rendered for one contact, and what the checks found.

    `unsubscribe`, `postal_address` and `opt_out` are None where they are not
    required (a service message; an SMS has no postal address, an email no opt-out line).
    """

    journey: str
    step: str
    template: str
    channel: str
    contact: str
    subject: str | None = None
    preview: str | None = None
    sms: str | None = None
    links: list[LinkCheck] = field(default_factory=list)
    unsubscribe: bool | None = None
    postal_address: bool | None = None
    opt_out: bool | None = None
    fallbacks: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if name == "href" and value]


def links_of(text: str, html_body: str = "") -> list[str]:
    """The distinct http(s) links of a text body and an HTML body (its hrefs), in order.

    The text of an HTML link may show a URL (`signed up at <a …>example.com</a>`):
    only its href is followed, so only the href is checked.
    """
    parser = _Hrefs()
    parser.feed(html_body)
    found = links_in(text) + parser.hrefs
    return list(dict.fromkeys(url for url in found if url.startswith(("http://", "https://"))))


def has_utm(url: str) -> bool:
    """Whether `url` carries every parameter of `UTM_KEYS`."""
    query = parse_qs(urlsplit(url).query)
    return all(query.get(key) for key in UTM_KEYS)


def preview_request(journey: type[Journey], step: MessageStep, contact: Contact) -> SendRequest:
    """The send request the journey would make for `step`."""
    return SendRequest(
        idempotency_key=f"preview/{journey.name}/{step.id}",
        contact_id=contact.id,
        journey=journey.name,
        step=step.id,
        template=step.template,
        channel=step.channel,
        category=journey.category,
    )


def preview_step(
    composer: MessagingActivities,
    journey: type[Journey],
    step: MessageStep,
    contact: Contact,
    *,
    now: datetime,
    out: Path,
    brand: Mapping[str, str],
) -> StepPreview:
    """Render `step` for `contact`, write it under `out`, and check it."""
    result = StepPreview(
        journey=journey.name,
        step=step.id,
        template=step.template,
        channel=str(step.channel),
        contact=contact.id,
    )
    request = preview_request(journey, step, contact)
    try:
        composed = composer.compose(request, contact, now)
    except TemplateError as error:
        result.problems.append(f"does not render: {error}")
        return result
    result.files = _write(composed, out / contact.id, step.template.rsplit("/", 1)[-1])
    marketing = journey.category == MessageCategory.MARKETING
    body = _check_email(result, composed, brand, marketing) or _check_sms(
        result, composed, brand, marketing
    )
    result.links = [
        LinkCheck(url=url, utm=has_utm(url))
        for url in links_of(*body)
        if url != composed.links.unsubscribe_url
    ]
    result.problems += [
        f"link without UTM parameters: {link.url}" for link in result.links if not link.utm
    ]
    if any(marker in part for part in body for marker in ("{{", "{%")):
        result.problems.append("unrendered Liquid ({{ or {%) in the message")
    result.fallbacks = _fallbacks(composer, request, contact, composed, now)
    return result


def _check_email(
    result: StepPreview, composed: ComposedMessage, brand: Mapping[str, str], marketing: bool
) -> tuple[str, str] | None:
    """Subject, preview, unsubscribe link, postal address; returns the bodies (None for SMS)."""
    email = composed.email
    if email is None:
        return None
    result.subject, result.preview = email.subject, email.preview
    page = html.unescape(email.html)
    result.postal_address = (
        brand["physical_address"] in email.text and brand["physical_address"] in page
    )
    unsubscribe = composed.links.unsubscribe_url
    if marketing:
        result.unsubscribe = bool(unsubscribe) and unsubscribe in email.text and unsubscribe in page
    result.problems += [
        problem
        for problem, failed in (
            ("empty subject", not email.subject),
            ("empty preview text", not email.preview),
            ("no postal address in the footer", not result.postal_address),
            ("no unsubscribe link (marketing email)", result.unsubscribe is False),
        )
        if failed
    ]
    return email.text, email.html


def _check_sms(
    result: StepPreview, composed: ComposedMessage, brand: Mapping[str, str], marketing: bool
) -> tuple[str, str]:
    """The opt-out line of a marketing SMS; returns the body."""
    body = result.sms = composed.sms or ""
    if marketing:
        result.opt_out = body.endswith(brand["sms_opt_out"])
        if not result.opt_out:
            result.problems.append(f"no opt-out line ({brand['sms_opt_out']!r})")
    return body, ""


def _fallbacks(
    composer: MessagingActivities,
    request: SendRequest,
    contact: Contact,
    composed: ComposedMessage,
    now: datetime,
) -> list[str]:
    """The optional fields the contact lacks that the message would show (see module doc)."""
    fell_back = []
    for name in OPTIONAL_FIELDS:
        if getattr(contact, name):
            continue
        probe = composer.compose(request, contact.model_copy(update={name: _MARKER}), now)
        if probe != composed:
            fell_back.append(name)
    return fell_back


def _write(composed: ComposedMessage, folder: Path, step: str) -> list[str]:
    """Write the rendered bodies: `<step>.txt` and `<step>.html`, or `<step>.sms.txt`
    (`step` is the template's name in its journey: `day0`, or an arm's `day0@b`)."""
    folder.mkdir(parents=True, exist_ok=True)
    if composed.email is not None:
        files = {f"{step}.txt": composed.email.text, f"{step}.html": composed.email.html}
    else:
        files = {f"{step}.sms.txt": composed.sms or ""}
    for name, content in files.items():
        (folder / name).write_text(content, encoding="utf-8")
    return [str(folder / name) for name in files]


def preview_journey(
    composer: MessagingActivities,
    journey: type[Journey],
    steps: Sequence[MessageStep],
    contacts: Sequence[Contact],
    *,
    brand: Mapping[str, str],
    now: datetime,
    out: Path,
) -> list[StepPreview]:
    """Every step rendered for every contact (step by step), written under `out/<contact>/`."""
    return [
        preview_step(composer, journey, step, contact, now=now, out=out, brand=brand)
        for step in steps
        for contact in contacts
    ]
