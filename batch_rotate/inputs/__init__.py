"""Read a device list (CSV or XLSX) into `DeviceRef`s; see `read.py`. No other module reads input
files: the header table is `headers.py`, choosing the column `columns.py`, the parsers are
`text.py` (CSV) and `xlsx.py`.
"""

from batch_rotate.inputs.headers import (
    HEADERS,
    KNOWN_HEADERS,
    PREFERENCE,
    KnownHeader,
    kind_of_header,
)
from batch_rotate.inputs.read import (
    CSV_SUFFIXES,
    XLSX_SUFFIXES,
    DeviceList,
    RefList,
    read_device_list,
)
from batch_rotate.inputs.sheet import MAX_COLUMNS, MAX_FIELD_CHARS, MAX_LINE_CHARS
from batch_rotate.inputs.values import normalise_guid

__all__ = [
    "CSV_SUFFIXES",
    "HEADERS",
    "KNOWN_HEADERS",
    "MAX_COLUMNS",
    "MAX_FIELD_CHARS",
    "MAX_LINE_CHARS",
    "PREFERENCE",
    "XLSX_SUFFIXES",
    "DeviceList",
    "KnownHeader",
    "RefList",
    "kind_of_header",
    "normalise_guid",
    "read_device_list",
]
