"""The email type of a contact (seed 002's 邮箱类型): `corporate` or `free`, from its domain.

Free-mail domains are listed in `rules/free_mail_domains.txt` (a maintained data
file: gmail.com, qq.com, 163.com, outlook.com…); an address at one of them, or at a
subdomain of one, is `free`, any other address `corporate`. The fit rules read the
type as the contact attribute `email_type`. Only the type leaves the ingest: the
address and its domain never enter a workflow's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Literal

FREE_MAIL_DOMAINS_FILE = Path(__file__).with_name("free_mail_domains.txt")
EMAIL_TYPE_FIELD = "email_type"
"""The derived attribute the fit rules read."""

EmailType = Literal["corporate", "free"]


@cache
def free_mail_domains() -> frozenset[str]:
    """The domains of `free_mail_domains.txt` (comments and blank lines skipped)."""
    lines = FREE_MAIL_DOMAINS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def email_type(address: str | None) -> EmailType | None:
    """`free` for an address at a free-mail domain, `corporate` for any other, None without one.

    Args:
        address: An email address (or None).

    Returns:
        The type, or None when there is no address or it has no domain.
    """
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().lower().rstrip(".")
    if not domain:
        return None
    labels = domain.split(".")
    parents = {".".join(labels[start:]) for start in range(len(labels))}
    return "free" if parents & free_mail_domains() else "corporate"


def fit_fields(attributes: Mapping[str, str], address: str | None) -> dict[str, str]:
    """What the fit rules read: the contact's attributes, and its `email_type` if it has an address.

    Args:
        attributes: The contact's attributes (an `email_type` among them is kept
            when the contact has no address).
        address: The contact's email address.

    Returns:
        The attributes with `email_type` set from the address.
    """
    fields = dict(attributes)
    kind = email_type(address)
    if kind is not None:
        fields[EMAIL_TYPE_FIELD] = kind
    return fields
