"""When a new lead is the same person as an existing contact (seed 002, step 2).

- **By email** (always): the same address, compared case-insensitively after the
  normalisation every address gets on entry (`models.contacts`: lower case, the
  domain in ASCII).
- **By company domain + name** (only with `DEDUPE_MATCH_DOMAIN_NAME`): the same
  email domain, when it is a company's (not a free-mail domain of
  `rules/free_mail_domains.txt`), and the same
  first name (trimmed, case-insensitive); only when exactly one contact matches.
"""

from __future__ import annotations

from rules.email_domains import email_type


def company_domain(email: str) -> str | None:
    """The domain of `email` if it is a company's (not a free-mail domain), else None."""
    if email_type(email) != "corporate":
        return None
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def same_name(first: str | None, second: str | None) -> bool:
    """Whether two first names are the same (trimmed, case-insensitive); never for a blank."""
    if not first or not second:
        return False
    return first.strip().casefold() == second.strip().casefold()
