"""Cell values both report files can hold safely: inert text, numbers, and real UTC date-times.

Text that Excel would read as a formula (leading `=`, `+`, `-`, `@`, tab or CR) gets a leading
`'`; characters a workbook cannot hold are dropped or replaced; bidi, format and C1 characters
are escaped (`\\u202e`), as in every human channel; ISO 8601 times become dates, and plain
decimal numbers (`20`, `-0.1`) numbers: a negative number is not a formula to neutralise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

from batch_rotate.report.xlsx import Cell, Style, excel_serial
from batch_rotate.textsafe import safe_text

DANGEROUS_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Characters a workbook cannot hold. The C0 controls XML 1.0 forbids are dropped; U+FFFE/U+FFFF
# and lone surrogates (which UTF-8 cannot encode) become U+FFFD so the reader sees something was
# there.
_UNWRITABLE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udfff]")
# Graph and the journal write `2026-11-27T00:00:00.1234567Z`; an offset is accepted, a time
# without a zone is not (its zone would be a guess). Starting with a digit, a neutralised
# (quoted) text can never match.
_ISO_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", re.ASCII
)
_EXCEL_FIRST_YEAR = 1900
# A plain decimal: no leading zero (an id like `0012` stays text), no exponent, at most 15
# significant digits (all Excel keeps), so the number shown is exactly the text recorded.
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?", re.ASCII)
_EXCEL_DIGITS = 15  # earlier dates (Graph's "never" is 0001-01-01) show as #### in Excel


def _replacement(match: re.Match[str]) -> str:
    return "\ufffd" if match.group() >= "\ud800" else ""


def neutralise(value: str) -> str:
    """Make text inert in Excel: drop unwritable characters, escape bidi overrides and other
    invisible controls (line breaks and tabs stay), then quote anything formula-like."""
    if not value.isprintable():  # printable text holds nothing to drop or escape: most text
        value = safe_text(_UNWRITABLE_RE.sub(_replacement, value), keep="\t\n\r")
    return "'" + value if value.startswith(DANGEROUS_PREFIXES) else value


def shown(value: object) -> int | str:
    """The value both files show: integers stay numbers, everything else is neutralised text."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return neutralise(str(value))


_FORMULA_FIRST = frozenset(DANGEROUS_PREFIXES)


def shown_row(values: Iterable[object]) -> list[int | str]:
    """`shown` of each value: printable text that starts no formula is kept as it is (the
    report's hottest loop, once per cell)."""
    return [
        v if type(v) is str and v.isprintable() and v[:1] not in _FORMULA_FIRST else shown(v)
        for v in values
    ]


def recorded_number(text: str) -> int | float | None:
    """The number a plain decimal text records (`20`, `60.0`, `-0.1`), else None."""
    if not _NUMBER_RE.fullmatch(text) or sum(c.isdigit() for c in text) > _EXCEL_DIGITS:
        return None
    return float(text) if "." in text else int(text)


def utc_datetime(text: str) -> datetime | None:
    """A naive UTC datetime for an ISO 8601 time with a zone that Excel can show, else None."""
    match = _ISO_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    zone = match.group(8)
    offset = timedelta(0)
    if zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        offset = -offset if zone[0] == "-" else offset
    try:
        when = datetime(year, month, day, hour, minute, second, micro, timezone(offset))
        naive = when.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None  # 2026-02-30, hour 25, or out of range once shifted to UTC
    return naive if naive.year >= _EXCEL_FIRST_YEAR else None


_DAYS: dict[str, int] = {}  # `2026-11-27` -> its Excel day number: a run spans few days
# `2026-11-27T10:20:30` -> (its Excel day, seconds into the day), for the journal's own
# `...T10:20:30.123Z`: a run's rows share their seconds, and parsing each time was 1.5 us.
_SECONDS: dict[str, tuple[int, int]] = {}
_CACHED_MAX = 100_000  # bounded, whatever the journal holds


def excel_date(text: str) -> float | None:
    """The Excel serial of an ISO 8601 time with a zone (as `utc_datetime` reads it), else None.

    The journal's own `...Z` times skip the datetime objects: a report holds millions of them.
    """
    if len(text) == 24 and text[19] == "." and text[23] == "Z":  # the journal's own times
        known = _SECONDS.get(text[:19])
        fraction = text[20:23]
        if known is not None and fraction.isascii() and fraction.isdigit():
            serial_day, clock = known  # the same operations as below: the same stored digits
            return serial_day + (clock + int(fraction) * 1000 / 10**6) / 86400
    match = _ISO_RE.fullmatch(text)
    if match is None:
        return None
    day, hour, minute, second = text[:10], int(match[4]), int(match[5]), int(match[6])
    if match[8] != "Z" or hour > 23 or minute > 59 or second > 59:
        when = utc_datetime(text)
        return None if when is None else excel_serial(when)
    days = _DAYS.get(day)
    if days is None:
        when = utc_datetime(f"{day}T00:00:00Z")
        if when is None:
            return None  # 2026-02-30, or before Excel's first year
        if len(_DAYS) > 10_000:  # bounded, whatever the journal holds
            _DAYS.clear()
        days = _DAYS[day] = int(excel_serial(when))
    if len(text) == 24 and text[19] == ".":
        if len(_SECONDS) > _CACHED_MAX:
            _SECONDS.clear()
        _SECONDS[text[:19]] = (days, hour * 3600 + minute * 60 + second)
    micro = int((match[7] or "0")[:6].ljust(6, "0"))
    # the same operations, in the same order, as excel_serial: the same stored digits
    return days + (hour * 3600 + minute * 60 + second + micro / 10**6) / 86400


def text_cell(text: str, *, bold: bool = False) -> Cell:
    """A string cell: never a formula or an error value, whatever the text looks like."""
    return Cell(text, Style.BOLD if bold else Style.PLAIN)


def date_cell(when: datetime, *, bold: bool = False) -> Cell:
    """A date-time cell shown as `yyyy-mm-dd hh:mm:ss` (the header says UTC)."""
    return Cell(when, Style.BOLD_DATE if bold else Style.DATE)


def summary_value(value: int | float | str, *, bold: bool = False) -> object:
    """A Summary cell: a number (never bold, as before), a date-time for an ISO time, else text."""
    if isinstance(value, int | float):
        return value
    when = utc_datetime(value)
    return date_cell(when, bold=bold) if when else text_cell(value, bold=bold)


# Status -> tone. Cell fills are Excel's own "good / neutral / bad" pastels; bars are stronger.
TONES: dict[str, tuple[str, ...]] = {
    "green": ("queued", "verified"),
    "amber": ("pending", "not_sent", "would_rotate", "unknown"),
    "red": ("failed", "uncertain", "done_no_new_key"),
    "grey": ("ineligible", "not_found", "ambiguous", "duplicate", "invalid_input", "not_supported"),
}
FILLS = {"green": "C6EFCE", "amber": "FFEB9C", "red": "FFC7CE", "grey": "E7E6E6"}
FONTS = {"green": "006100", "amber": "9C5700", "red": "9C0006", "grey": "595959"}
BARS = {"green": "63BE7B", "amber": "FFC000", "red": "F8696B", "grey": "A6A6A6"}


def tone(status: str) -> str | None:
    """The colour family a status is shown in, or None for a status with no colour."""
    for name, statuses in TONES.items():
        if status in statuses:
            return name
    return None
