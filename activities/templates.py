"""Message templates: Liquid assets loaded, validated and rendered.

Layout of `templates/`:

- `brand.toml`: brand variables, available to every template as `brand.*`;
- `layouts/email.txt.liquid`, `layouts/email.html.liquid`: the shared text and
  HTML frames (preheader, CTA button, footer with the physical address);
- `<journey>/<step>.toml`: one message each, with the Liquid strings
  `subject`, `preview`, `opening`, `cta_label`, `cta_url` and `closing`.

Contact fields (`first_name`, `company`) are only defined when the contact
has them, so a template must give a fallback (`{{ first_name | default:
"there" }}`) or test for them (`{% if company %}`); the catalogue renders every
message without them when it loads, so a missing fallback is an error at
worker start, not at 3 a.m. on Day 7. Contact data is passed as variables and
is never parsed as Liquid.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from liquid import BoundTemplate, Environment, FalsyStrictUndefined
from liquid.exceptions import LiquidError

MESSAGE_FIELDS = ("subject", "preview", "opening", "cta_label", "cta_url", "closing")
CONTACT_FIELDS = ("first_name", "company")
_SAMPLE_CONTACT = {"first_name": "Sample", "company": "Sample Co"}


class TemplateError(Exception):
    """A template is missing, malformed or cannot render; the message names the file."""


@dataclass(frozen=True)
class RenderedEmail:
    """An email rendered for one contact."""

    subject: str
    preview: str
    text: str
    html: str


@dataclass(frozen=True)
class _EmailTemplate:
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
        self.brand = self._load_brand(directory / "brand.toml")
        self._text_layout = self._parse_file(self._env, directory / "layouts" / "email.txt.liquid")
        self._html_layout = self._parse_file(
            self._html_env, directory / "layouts" / "email.html.liquid"
        )
        self._emails = {
            path.relative_to(directory).with_suffix("").as_posix(): self._load_email(path)
            for path in sorted(directory.glob("*/*.toml"))
        }
        for name in self._emails:
            for contact in ({}, _SAMPLE_CONTACT):
                self.render_email(name, contact)

    @property
    def names(self) -> list[str]:
        """Names of the email templates, e.g. `welcome-series/day0`."""
        return sorted(self._emails)

    def render_email(self, name: str, contact: Mapping[str, str | None]) -> RenderedEmail:
        """Render email template `name` for a contact.

        Args:
            name: Template name, e.g. `welcome-series/day0`.
            contact: Contact fields; `None` or missing values use the template's fallback.

        Returns:
            Subject, preview text, and the text and HTML bodies.

        Raises:
            TemplateError: unknown template, or it cannot render.
        """
        template = self._emails.get(name)
        if template is None:
            raise TemplateError(f"unknown template {name!r}; known: {', '.join(self.names)}")
        variables = {
            "brand": self.brand,
            **{key: value for key in CONTACT_FIELDS if (value := contact.get(key))},
        }
        try:
            parts = {key: bound.render(**variables) for key, bound in template.fields.items()}
            opening, closing = parts["opening"].strip(), parts["closing"].strip()
            frame = {
                "brand": self.brand,
                "subject": parts["subject"].strip(),
                "preview": parts["preview"].strip(),
                "cta_label": parts["cta_label"].strip(),
                "cta_url": parts["cta_url"].strip(),
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

    def _load_brand(self, path: Path) -> dict[str, str]:
        try:
            brand = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise TemplateError(f"{path}: {error}") from error
        return {str(key): str(value) for key, value in brand.items()}

    def _parse_file(self, env: Environment, path: Path) -> BoundTemplate:
        try:
            return env.from_string(path.read_text(encoding="utf-8"))
        except (OSError, LiquidError) as error:
            raise TemplateError(f"{path}: {error}") from error

    def _load_email(self, path: Path) -> _EmailTemplate:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise TemplateError(f"{path}: {error}") from error
        missing = [key for key in MESSAGE_FIELDS if not isinstance(raw.get(key), str)]
        unknown = sorted(set(raw) - set(MESSAGE_FIELDS))
        if missing or unknown:
            raise TemplateError(
                f"{path}: missing text fields {missing}, unknown fields {unknown}; "
                f"a message has exactly {', '.join(MESSAGE_FIELDS)}"
            )
        try:
            fields = {key: self._env.from_string(raw[key]) for key in MESSAGE_FIELDS}
        except LiquidError as error:
            raise TemplateError(f"{path}: {error}") from error
        return _EmailTemplate(path=path, fields=fields)
