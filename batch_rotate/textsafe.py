"""Text from outside (device names, file names, Graph messages): safe to show, safe to match.

Shown: control, format (bidi, zero-width), line-separator and surrogate characters become
visible escapes (`\\x1b`, `\\n`, `\\u202e`); the journal keeps the true value. Matched: a name
equal only after Unicode folding (`\\u212aIOSK` for `KIOSK`) is a look-alike, never the same.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from typing import Any

# Cc: C0, DEL, C1 (ESC, CSI, OSC, NEL, newlines); Cf: bidi overrides, isolates and marks, zero
# width characters, ALM; Zl/Zp: U+2028/U+2029 break lines; Cs: lone surrogates (undecodable bytes
# of a file name) that a UTF-8 stream cannot even write.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_unsafe(char: str) -> bool:
    """Whether one character must not reach a terminal, a log line or a report as it is."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def safe_text(text: str, *, keep: str = "") -> str:
    """`text` with every unsafe character (but those in `keep`) shown as a visible escape."""
    if text.isprintable():  # the fast path: printable excludes every unsafe category
        return text
    return "".join(_escape(c) if c not in keep and is_unsafe(c) else c for c in text)


def safe_lines(text: str) -> str:
    """Like `safe_text`, but each `\\n` is kept: for the tool's own multi-line text."""
    return "\n".join(safe_text(line) for line in text.split("\n"))


def match_key(text: str) -> str:
    """The loose key names and serials are matched on: NFKC and case folding (finds look-alikes
    too; `same_spelling` tells them apart)."""
    text = text.strip()
    if text.isascii():
        return text.casefold()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def spelling(text: str) -> str:
    """The strict key: only ASCII letters fold (Windows device names and serials are ASCII);
    `\\u212a` (Kelvin) stays apart from `K`, fullwidth from ASCII, `\\u0130` from `i`."""
    return text.strip().translate(_ASCII_LOWER)


def same_spelling(a: str, b: str) -> bool:
    """Whether two names are the same but for ASCII case (and surrounding spaces)."""
    return spelling(a) == spelling(b)


def ascii_shown(text: str) -> str:
    """Every character that is not printable ASCII escaped: a look-alike's difference shows."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c.isascii() and c.isprintable() else _escape(c) for c in text)


# Candidates in a dumped document: anything but printable ASCII and the indent's newlines (JSON
# escapes C0 inside strings itself, so an unsafe character left raw is inside a string).
_JSON_CANDIDATE = re.compile("[^\x20-\x7e\n]")


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if not is_unsafe(char):
        return char
    data = char.encode("utf-16-be", "surrogatepass")  # a pair for characters beyond the BMP
    return "".join(f"\\u{int.from_bytes(data[i : i + 2]):04x}" for i in range(0, len(data), 2))


def safe_json(value: Any, **dumps: Any) -> str:
    """json.dumps(value, ensure_ascii=False, ...) with control and bidi characters escaped.

    The decoded document holds the true values; only the bytes on the screen are inert.
    """
    return _JSON_CANDIDATE.sub(_json_escape, json.dumps(value, ensure_ascii=False, **dumps))


class SafeFormatter(logging.Formatter):
    """A log formatter whose lines carry no raw control or bidi character (one record, one
    line); a traceback keeps its own line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return safe_text(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return safe_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return safe_lines(super().formatStack(stack_info))
