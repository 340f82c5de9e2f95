"""SMS keywords: what a text that is only a carrier keyword asks for.

| texted (whole message, any case, punctuation ignored) | action |
| --- | --- |
| STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT | `stop`: suppress SMS to the number, confirm |
| START, UNSTOP | `start`: lift a STOP, restore the consent it withdrew, confirm |
| HELP | `help`: answer with the brand's help text |

Anything else ("stop texting me please") is not a keyword. Each action is
answered with the SMS template `sms-keywords/<action>`.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum

SERVICE_SMS_JOURNEY = "sms-keywords"
"""The message log's `journey` of the answers to SMS keywords."""


class KeywordAction(StrEnum):
    """What a keyword does."""

    STOP = "stop"
    START = "start"
    HELP = "help"

    @property
    def reply_template(self) -> str:
        """The SMS template of the answer, e.g. `sms-keywords/stop`."""
        return f"sms-keywords/{self.value}"


KEYWORDS: dict[str, KeywordAction] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), KeywordAction.STOP
    ),
    **dict.fromkeys(("START", "UNSTOP"), KeywordAction.START),
    "HELP": KeywordAction.HELP,
}

REPLY_TEMPLATES = frozenset((action.reply_template, "sms") for action in KeywordAction)
"""Every (template, channel) the answers use; the worker checks they exist."""


def keyword_of(body: str) -> str | None:
    """The keyword a message is, e.g. `STOP` for ` Stop. `; None when it is anything else."""
    text = unicodedata.normalize("NFKC", body)
    letters = "".join(char for char in text if not unicodedata.category(char).startswith("P"))
    word = letters.strip().upper()
    return word if word in KEYWORDS else None
