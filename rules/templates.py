"""Message templates: Liquid assets loaded, validated and rendered.

Layout of `templates/`:

- `brand.toml`: brand variables, available to every template as `brand.*`;
- `layouts/email.txt.liquid`, `layouts/email.html.liquid`: the shared text and
  HTML frames (preheader, CTA button, footer with the physical address);
- `<journey>/<step>.toml`: one email each, with the Liquid strings
  `subject`, `preview`, `opening`, `cta_label`, `cta_url` and `closing`;
- `<journey>/<step>.sms.toml`: one SMS each, with a Liquid `body` (the
  opt-out line `brand.sms_opt_out` is appended: every marketing SMS says
  "Reply STOP");
- `sms-keywords/{stop,start,help}.sms.toml`: the service replies to the
  carrier keywords (sent without the opt-out line).

Contact fields (`first_name`, `company`) are only defined when the contact
has them, so a template must give a fallback (`{{ first_name | default:
"there" }}`) or test for them (`{% if company %}`); `tags` is the contact's tag
list, for dynamic blocks (`{% if tags contains "int_product_course" %}`). The
catalogue renders every message without contact fields when it loads, so a
missing fallback is an error at worker start, not at 3 a.m. on Day 7. Contact
data is passed as variables and is never parsed as Liquid; so is what a journey
adds to a message (`SendRequest.variables`, e.g. the abandoned cart as `cart`),
which templates must give a fallback for too (`{% if cart %}…{% endif %}`).

Every http(s) link of a rendered message gets the UTM parameters of its
journey and step; the footer carries the unsubscribe link. A marketing email
also knows `keep_subscribed_url`, its signed "keep me subscribed" link
(re-engagement's last chance); it is undefined elsewhere (a service message, a
preview without a contact), so a template gives it a fallback too.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from liquid import BoundTemplate, Environment, FalsyStrictUndefined
from liquid.exceptions import LiquidError

MESSAGE_FIELDS = ("subject", "preview", "opening", "cta_label", "cta_url", "closing")
SMS_FIELDS = ("body",)
_URL = re.compile(r"https?://[^\s<>\"'()]+")
_TRAILING_PUNCTUATION = ".,;:!?"


class TemplateError(Exception):
    """A template is missing, malformed or cannot render; the message names the file."""


@dataclass(frozen=True)
class ContactFields:
    """What templates may know of a contact."""

    first_name: str | None = None
    company: str | None = None
    tags: Sequence[str] = ()

    def variables(self) -> dict[str, object]:
        """Template variables: missing fields stay undefined (so fallbacks apply)."""
        present = {"first_name": self.first_name, "company": self.company}
        return {key: value for key, value in present.items() if value} | {"tags": list(self.tags)}


@dataclass(frozen=True)
class LinkContext:
    """How a message's links are decorated.

    Attributes:
        utm: UTM parameters added to every link (existing ones are kept).
        unsubscribe_url: The signed one-click unsubscribe link for the footer.
        keep_subscribed_url: The signed "keep me subscribed" link (marketing email only).
    """

    utm: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_url: str = ""
    keep_subscribed_url: str = ""

    def variables(self) -> dict[str, str]:
        """The links a template may use: `keep_subscribed_url`, when there is one."""
        return {"keep_subscribed_url": self.keep_subscribed_url} if self.keep_subscribed_url else {}


_SAMPLE_CONTACTS = (
    ContactFields(),
    ContactFields(first_name="Sample", company="Sample Co", tags=("int_sample",)),
)
_SAMPLE_LINKS = LinkContext(
    utm={"utm_source": "journeys", "utm_campaign": "sample"},
    unsubscribe_url="https://example.invalid/u/sample",
)


def add_utm(url: str, utm: Mapping[str, str]) -> str:
    """`url` with the UTM parameters added (parameters it already has win)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged = {**utm, **query}
    return urlunsplit(parts._replace(query=urlencode(merged)))


def links_in(text: str) -> list[str]:
    """The http(s) links of plain text, as `tag_links` finds them (trailing punctuation off)."""
    return [match.group(0).rstrip(_TRAILING_PUNCTUATION) for match in _URL.finditer(text)]


def tag_links(text: str, utm: Mapping[str, str]) -> str:
    """Add the UTM parameters to every http(s) link in plain text.

    Something that only looks like a link (`https://[oops`, from contact data
    perhaps) is left as it is.
    """

    def decorate(match: re.Match[str]) -> str:
        url = match.group(0)
        stripped = url.rstrip(_TRAILING_PUNCTUATION)
        try:
            return add_utm(stripped, utm) + url[len(stripped) :]
        except ValueError:  # urlsplit: e.g. "Invalid IPv6 URL"
            return url

    return _URL.sub(decorate, text)


def load_brand(directory: Path) -> dict[str, str]:
    """The brand variables of a templates folder (`brand.toml`).

    Raises:
        TemplateError: the file is missing or malformed.
    """
    path = directory / "brand.toml"
    try:
        brand = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TemplateError(f"{path}: {error}") from error
    return {str(key): str(value) for key, value in brand.items()}


@dataclass(frozen=True)
class RenderedEmail:
    """An email rendered for one contact."""

    subject: str
    preview: str
    text: str
    html: str


@dataclass(frozen=True)
class _Template:
    path: Path
    fields: Mapping[str, BoundTemplate]


def _paragraphs(text: str) -> list[str]:
    return [block.strip() for block in text.strip().split("\n\n") if block.strip()]


class TemplateCatalog:
    """All message templates of a `templates/` folder, parsed and validated."""

    def __init__(self, directory: Path) -> None:
        """Load and validate every template under `directory`.

        Args:
            directory: The templates folder.

        Raises:
            TemplateError: naming the file that is missing, malformed, uses an
                unknown variable or lacks a fallback for a contact field.
        """
        self.directory = directory
        self._env = Environment(undefined=FalsyStrictUndefined)
        self._html_env = Environment(undefined=FalsyStrictUndefined, autoescape=True)
        self.brand = load_brand(directory)
        self._text_layout = self._parse_file(self._env, directory / "layouts" / "email.txt.liquid")
        self._html_layout = self._parse_file(
            self._html_env, directory / "layouts" / "email.html.liquid"
        )
        self._emails: dict[str, _Template] = {}
        self._sms: dict[str, _Template] = {}
        for path in sorted(directory.glob("*/*.toml")):
            name = path.relative_to(directory).as_posix().removesuffix(".toml")
            if name.endswith(".sms"):
                self._sms[name.removesuffix(".sms")] = self._load(path, SMS_FIELDS)
            else:
                self._emails[name] = self._load(path, MESSAGE_FIELDS)
        for contact in _SAMPLE_CONTACTS:
            for name in self._emails:
                self.render_email(name, contact, _SAMPLE_LINKS)
            for name in self._sms:
                self.render_sms(name, contact, _SAMPLE_LINKS)

    @property
    def names(self) -> list[str]:
        """Names of the email templates, e.g. `welcome-series/day0`."""
        return sorted(self._emails)

    @property
    def sms_names(self) -> list[str]:
        """Names of the SMS templates, e.g. `pricing-abandon/day2`."""
        return sorted(self._sms)

    def require(self, journey: str, needed: Iterable[tuple[str, str]]) -> None:
        """Check that every (template, channel) a journey may send exists.

        Raises:
            TemplateError: naming the journey, the template and where it should be.
        """
        known = {"email": self._emails, "sms": self._sms}
        for name, channel in sorted(needed):
            if name not in known.get(str(channel), {}):
                suffix = ".sms.toml" if str(channel) == "sms" else ".toml"
                raise TemplateError(
                    f"journey {journey} sends {channel} template {name!r}, but "
                    f"{self.directory / (name + suffix)} does not exist"
                )

    def render_email(
        self,
        name: str,
        contact: ContactFields,
        links: LinkContext,
        *,
        variables: Mapping[str, object] | None = None,
    ) -> RenderedEmail:
        """Render email template `name` for a contact.

        Args:
            name: Template name, e.g. `welcome-series/day0`.
            contact: The contact's fields; missing ones use the template's fallback.
            links: UTM parameters and the unsubscribe link.
            variables: What the journey adds (e.g. `cart`); `brand` and the
                contact's fields win over a variable of the same name.

        Returns:
            Subject, preview text, and the text and HTML bodies.

        Raises:
            TemplateError: unknown template, or it cannot render.
        """
        template = self._emails.get(name)
        if template is None:
            raise TemplateError(f"unknown template {name!r}; known: {', '.join(self.names)}")
        known = {
            **(variables or {}),
            "brand": self.brand,
            **contact.variables(),
            **links.variables(),
        }
        try:
            parts = {key: bound.render(**known) for key, bound in template.fields.items()}
            opening = tag_links(parts["opening"].strip(), links.utm)
            closing = tag_links(parts["closing"].strip(), links.utm)
            frame = {
                "brand": self.brand,
                "subject": parts["subject"].strip(),
                "preview": parts["preview"].strip(),
                "cta_label": parts["cta_label"].strip(),
                "cta_url": add_utm(parts["cta_url"].strip(), links.utm),
                "website_url": add_utm(self.brand["website_url"], links.utm),
                "unsubscribe_url": links.unsubscribe_url,
            }
            text = self._text_layout.render(**frame, opening=opening, closing=closing)
            html = self._html_layout.render(
                **frame,
                opening_paragraphs=_paragraphs(opening),
                closing_paragraphs=_paragraphs(closing),
            )
        except LiquidError as error:
            raise TemplateError(f"{template.path}: {error}") from error
        return RenderedEmail(
            subject=str(frame["subject"]), preview=str(frame["preview"]), text=text, html=html
        )

    def render_sms(
        self,
        name: str,
        contact: ContactFields,
        links: LinkContext,
        *,
        opt_out: bool = True,
        variables: Mapping[str, object] | None = None,
    ) -> str:
        """Render SMS template `name`: its body, links tagged, and the opt-out line.

        Args:
            name: Template name, e.g. `pricing-abandon/day2`.
            contact: The contact's fields; missing ones use the template's fallback.
            links: UTM parameters.
            opt_out: Append `brand.sms_opt_out` ("Reply STOP to opt out."); service
                replies to a keyword say what they need themselves.
            variables: What the journey adds (e.g. `cart`), as for `render_email`.

        Raises:
            TemplateError: unknown template, or it cannot render.
        """
        template = self._sms.get(name)
        if template is None:
            raise TemplateError(
                f"unknown SMS template {name!r}; known: {', '.join(self.sms_names)}"
            )
        try:
            known = {**(variables or {}), "brand": self.brand, **contact.variables()}
            body = template.fields["body"].render(**known)
        except LiquidError as error:
            raise TemplateError(f"{template.path}: {error}") from error
        text = tag_links(body.strip(), links.utm)
        return f"{text} {self.brand['sms_opt_out']}" if opt_out else text

    def _parse_file(self, env: Environment, path: Path) -> BoundTemplate:
        try:
            return env.from_string(path.read_text(encoding="utf-8"))
        except (OSError, LiquidError) as error:
            raise TemplateError(f"{path}: {error}") from error

    def _load(self, path: Path, expected: Sequence[str]) -> _Template:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise TemplateError(f"{path}: {error}") from error
        missing = [key for key in expected if not isinstance(raw.get(key), str)]
        unknown = sorted(set(raw) - set(expected))
        if missing or unknown:
            raise TemplateError(
                f"{path}: missing text fields {missing}, unknown fields {unknown}; "
                f"a message has exactly {', '.join(expected)}"
            )
        try:
            fields = {key: self._env.from_string(raw[key]) for key in expected}
        except LiquidError as error:
            raise TemplateError(f"{path}: {error}") from error
        return _Template(path=path, fields=fields)
