"""What may reach a log line: text from outside with its control characters escaped (one input line stays one
log line), and request paths with the secrets they carry masked.

The card link `/cards/<token>.pkpass` gives the whole card to whoever holds it, a device library id lists a
device's passes, and a lost card's magic link `/member/link/<token>` opens the member's page: access logs (the
dev server's `werkzeug` logger, gunicorn's access log via gunicorn.conf.py) keep only their first characters,
enough to tell two apart."""

from __future__ import annotations

import logging
import re

SHOWN = 4  # characters of a masked token kept in the log
_SECRET_IN_PATH = re.compile(r"(/cards/|/devices/|/member/link/)([^/?#\s\"'.]+)")
# C0 and C1 controls, DEL, Unicode line/paragraph separators and bidirectional overrides (which reorder what an
# operator reads), and the backslash itself so an escaped "\n" cannot be told from a typed one.
_UNPRINTABLE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` on one line: control characters as Python escapes (`\\n`, `\\x1b`, `\\u2028`), `\\` doubled."""
    return _UNPRINTABLE.sub(_escape, text)


def mask_secrets(text: str) -> str:
    """Card-link tokens and device library ids in `text` cut to their first SHOWN characters."""
    return _SECRET_IN_PATH.sub(lambda match: match[1] + match[2][:SHOWN] + "***", text)


class MaskSecretsFilter(logging.Filter):
    """For the dev server's `werkzeug` logger: the request line of each access log record, masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


MASK_SECRETS = MaskSecretsFilter()


def mask_dev_server_access_log() -> None:
    """Idempotent: the same filter object is added once."""
    logging.getLogger("werkzeug").addFilter(MASK_SECRETS)


def _escape(match: re.Match) -> str:
    char = match[0]
    if char == "\\":
        return "\\\\"
    return repr(char)[1:-1] if char.isascii() else f"\\u{ord(char):04x}"
