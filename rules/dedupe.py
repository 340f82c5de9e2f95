"""When a new lead is the same person as an existing contact (seed 002, step 2).

- **By email** (always): the same address, compared case-insensitively after the
  normalisation every address gets on entry (`models.contacts`: lower case, the
  domain in ASCII).
- **By company domain + name** (only with `DEDUPE_MATCH_DOMAIN_NAME`): the same
  email domain, when it is a company's (not in `FREE_MAIL_DOMAINS`), and the same
  first name (trimmed, case-insensitive); only when exactly one contact matches.
"""

from __future__ import annotations

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me",
        "protonmail.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "yandex.com",
        "yandex.ru", "mail.ru", "qq.com", "163.com", "126.com", "sina.com", "foxmail.com",
        "zoho.com", "fastmail.com", "tutanota.com", "hey.com", "orange.fr", "free.fr",
    }
)  # fmt: skip
"""Email domains many unrelated people share: no company is behind them."""


def company_domain(email: str) -> str | None:
    """The domain of `email` if it is a company's (not a free-mail domain), else None."""
    domain = email.rpartition("@")[2].strip().lower()
    return domain if domain and domain not in FREE_MAIL_DOMAINS else None


def same_name(first: str | None, second: str | None) -> bool:
    """Whether two first names are the same (trimmed, case-insensitive); never for a blank."""
    if not first or not second:
        return False
    return first.strip().casefold() == second.strip().casefold()
