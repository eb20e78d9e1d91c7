"""The MySQL engine's DATETIME converter reads every value exactly as PyMySQL's own does."""

from __future__ import annotations

import pytest
from pymysql.converters import convert_datetime

from nightwatch.adapters.sql.engine import MYSQL_CONVERSIONS, mysql_datetime


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-01 00:00:00",
        "2026-03-01 00:00:00.5",
        "2026-03-01 00:00:00.123",
        "2026-03-01 00:00:00.123456",
        b"2026-03-01 12:34:56.000001",
        "2026-03-01T01:02:03",
        "9999-12-31 23:59:59.999999",
        "0000-00-00 00:00:00",  # MySQL's zero date: kept as the string
        "2007-02-31 23:06:20",  # an impossible day: the string
        "2026-03-01",  # no time: PyMySQL's date
        "2026-03-01 00:00:00+02:00",  # never sent by the server; PyMySQL keeps the string
        "",
    ],
)
def test_it_reads_a_value_as_pymysql_does(value: bytes | str) -> None:
    assert mysql_datetime(value) == convert_datetime(value)
    assert type(mysql_datetime(value)) is type(convert_datetime(value))


def test_bytes_that_are_not_ascii_fail_as_they_do_in_pymysql() -> None:
    for read in (mysql_datetime, convert_datetime):
        with pytest.raises(UnicodeDecodeError):
            read(b"\xff\xfe")


def test_it_is_the_converter_of_both_datetime_types() -> None:
    from pymysql.constants import FIELD_TYPE

    assert MYSQL_CONVERSIONS[FIELD_TYPE.DATETIME] is mysql_datetime
    assert MYSQL_CONVERSIONS[FIELD_TYPE.TIMESTAMP] is mysql_datetime
