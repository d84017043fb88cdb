"""Working days for deadlines such as "within 2 working days", as the State Council sets them.

A working day in mainland China is Monday to Friday, minus the public holidays announced each year
by the State Council's General Office (国务院办公厅关于 X 年部分节假日安排的通知), plus the
make-up working days (调休上班) of the same notice, which fall on weekends. No rule predicts
them, so they are data: ``domain/calendars/<name>.yaml``, one entry per calendar year.

Outside the years a file covers only the weekend rule applies. That is a guess, not a fact, so
``covers()`` says which years are real data and a caller can flag a verdict that leaned on a guess.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]

_CALENDAR_DIR = Path(__file__).resolve().parent / "calendars"
END_OF_TIME = datetime.max.replace(tzinfo=UTC)
"""Where deadlines saturate: a date past the calendar's range is "not before the end of
time", never an overflow (records can carry years up to 9999)."""
_CALENDAR_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_YEAR = re.compile(r"[0-9]{4}\Z")
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TOP_KEYS = frozenset({"id", "name", "weekend", "source", "years"})
_YEAR_KEYS = frozenset({"notice", "amended_by", "sources", "verified", "holidays", "workdays"})


@dataclass(frozen=True)
class YearSchedule:
    """One calendar year of a calendar file: the days off and the weekend days worked."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    notice: str | None
    verified: bool


class WorkingDayCalendar:
    """Answers "is this a working day" and counts working days for one jurisdiction."""

    def __init__(
        self, calendar_id: str, weekend: frozenset[int], years: Mapping[int, YearSchedule]
    ) -> None:
        self.id = calendar_id
        self.weekend = weekend
        self._years = dict(years)

    @property
    def years(self) -> tuple[int, ...]:
        """The calendar years whose holidays and make-up days are known, in order."""
        return tuple(sorted(self._years))

    def covers(self, year: int) -> bool:
        """Whether ``year`` is real data; outside it only the weekend rule is applied."""
        return year in self._years

    def covers_span(self, first: date, last: date) -> bool:
        """Whether every year from ``first`` to ``last`` (either order) is covered."""
        low, high = sorted((first.year, last.year))
        return all(self.covers(year) for year in range(low, high + 1))

    def is_verified(self, year: int) -> bool:
        """Whether ``year`` is covered and was checked against its notice, not typed from memory."""
        schedule = self._years.get(year)
        return schedule is not None and schedule.verified

    def schedule(self, year: int) -> YearSchedule | None:
        """The data behind ``year``, or None when the year is not covered."""
        return self._years.get(year)

    def is_working_day(self, d: date) -> bool:
        _require_plain_date(d)
        schedule = self._years.get(d.year)
        if schedule is not None:
            # The notice overrides the weekend rule in both directions.
            if d in schedule.workdays:
                return True
            if d in schedule.holidays:
                return False
        return d.weekday() not in self.weekend

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The deadline of an obligation due "within ``n`` working days after ``start``".

        Exact definition: let D be ``start``'s calendar date in ``start``'s own UTC offset.
        Walk forward from the day after D and stop on the n-th working day, W. The deadline is
        the end of W, 24:00 local time, returned as 00:00 of the day after W with
        ``tzinfo=timezone(start.utcoffset())``. An act is in time when it happens strictly
        before that instant.

        D itself never counts, whatever the time of day and whether or not it is a working day:
        "after start" begins on the next calendar day. ``n == 0`` therefore means the end of D.
        ``start`` must be timezone-aware, because its offset decides which calendar date D is;
        pass Beijing time (+08:00) for the China calendar.
        """
        offset = start.utcoffset()
        if offset is None:
            raise ValueError(f"start must be timezone-aware, got naive {start.isoformat()}")
        if n < 0:
            raise ValueError(f"n must be zero or more working days, got {n}")
        day = start.date()
        try:
            for _ in range(n):
                day = self._next_working_day(day)
            return datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone(offset))
        except OverflowError:
            return END_OF_TIME

    def working_days_between(self, a: date, b: date) -> int:
        """How many working days d satisfy a < d <= b; negative when b is before a.

        Counting from the day after ``a`` matches ``add_working_days``: if that method lands on
        the end of day W from a start on day D, then ``working_days_between(D, W) == n``.
        """
        _require_plain_date(a)
        _require_plain_date(b)
        if b < a:
            return -self.working_days_between(b, a)
        count = 0
        day = a
        while day < b:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count

    def _next_working_day(self, day: date) -> date:
        # Terminates: the loader refuses a weekend of all seven days, so some weekday works.
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day


def load_calendar(name: str = "cn") -> WorkingDayCalendar:
    """The calendar shipped as ``domain/calendars/<name>.yaml``, read and checked once."""
    # The cache sits one level down: lru_cache would treat load_calendar() and
    # load_calendar("cn") as different calls and read the file twice.
    return _load_shipped_calendar(name)


@functools.cache
def _load_shipped_calendar(name: str) -> WorkingDayCalendar:
    # The name becomes a file path, so keep it to a plain word.
    if not _CALENDAR_NAME.fullmatch(name):
        raise ValueError(f"calendar name {name!r} is not a plain lowercase word")
    path = _CALENDAR_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no calendar named {name!r}: {path} does not exist")
    calendar = load_calendar_file(path)
    if calendar.id != name:
        raise ValueError(f"{path}: id {calendar.id!r} does not match the file name {name!r}")
    return calendar


def load_calendar_file(path: Path) -> WorkingDayCalendar:
    """Read and check one calendar file; every error is a ValueError naming the file."""
    document = _parse_yaml(path.read_text(encoding="utf-8"), path)
    top = _mapping(document, f"{path}")
    _reject_unknown_keys(top, _TOP_KEYS, f"{path}")
    calendar_id = _string(top.get("id"), f"{path}: id")
    weekend = _weekend(top.get("weekend"), f"{path}: weekend")
    years_node = _mapping(top.get("years"), f"{path}: years")
    if not years_node:
        raise ValueError(f"{path}: years: no year is listed")
    schedules: dict[int, YearSchedule] = {}
    for key, entry in years_node.items():
        year = _year(key, f"{path}: years")
        schedules[year] = _year_schedule(year, entry, weekend, f"{path}: year {year}")
    return WorkingDayCalendar(calendar_id, weekend, schedules)


def _parse_yaml(text: str, path: Path) -> object:
    # BaseLoader keeps every scalar a string, so "2024-02-30" or "2024/02/04" reach the checks
    # below instead of failing (or turning into something else) inside the YAML library.
    try:
        _reject_duplicate_keys(yaml.compose(text, Loader=yaml.BaseLoader), path)
        document: object = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    return document


def _reject_duplicate_keys(node: object, path: Path) -> None:
    # A repeated year key would otherwise silently replace the first one's data.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                raise ValueError(f"{path}: line {line}: a key must be a plain value")
            if key_node.value in seen:
                line = key_node.start_mark.line + 1
                raise ValueError(f"{path}: line {line}: duplicate key {key_node.value!r}")
            seen.add(key_node.value)
            _reject_duplicate_keys(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, path)


def _year_schedule(year: int, entry: object, weekend: frozenset[int], where: str) -> YearSchedule:
    fields = _mapping(entry, where)
    _reject_unknown_keys(fields, _YEAR_KEYS, where)
    for required in ("holidays", "workdays"):
        if required not in fields:
            raise ValueError(f"{where}: {required} is missing (write [] when there are none)")
    holidays = _dates(fields["holidays"], year, f"{where}: holidays")
    workdays = _dates(fields["workdays"], year, f"{where}: workdays")
    for day in sorted(workdays):
        # A make-up day moves work onto a weekend; a listed weekday would change nothing.
        if day.weekday() not in weekend:
            raise ValueError(
                f"{where}: workday {day.isoformat()} is a {_DAY_NAMES[day.weekday()]}, "
                "not a weekend day"
            )
    both = sorted(holidays & workdays)
    if both:
        clash = both[0].isoformat()
        raise ValueError(f"{where}: {clash} is listed both as a holiday and as a workday")
    notice = fields.get("notice")
    return YearSchedule(
        year=year,
        holidays=holidays,
        workdays=workdays,
        notice=None if notice is None else _string(notice, f"{where}: notice"),
        verified=_boolean(fields.get("verified", "true"), f"{where}: verified"),
    )


def _dates(node: object, year: int, where: str) -> frozenset[date]:
    if not isinstance(node, list):
        raise ValueError(f"{where}: expected a list of dates, got {node!r}")
    days: set[date] = set()
    for item in node:
        day = _iso_date(item, where)
        # Dates sit under the year they fall in, even when an earlier notice announced them.
        if day.year != year:
            raise ValueError(f"{where}: {day.isoformat()} is filed under year {year}")
        if day in days:
            raise ValueError(f"{where}: {day.isoformat()} is listed twice")
        days.add(day)
    return frozenset(days)


def _iso_date(item: object, where: str) -> date:
    # date.fromisoformat alone would also take "20240204" on Python 3.11; the file uses one form.
    if isinstance(item, str) and _ISO_DATE.fullmatch(item):
        try:
            return date.fromisoformat(item)
        except ValueError:
            pass
    raise ValueError(f"{where}: {item!r} is not a valid ISO date (YYYY-MM-DD)")


def _year(key: str, where: str) -> int:
    if not _YEAR.fullmatch(key):
        raise ValueError(f"{where}: year key {key!r} is not a four-digit year")
    return int(key)


def _weekend(node: object, where: str) -> frozenset[int]:
    if not isinstance(node, list):
        raise ValueError(f"{where}: expected a list such as [sat, sun], got {node!r}")
    days: set[int] = set()
    for item in node:
        if not isinstance(item, str) or item not in _WEEKDAYS:
            raise ValueError(f"{where}: {item!r} is not one of {', '.join(_WEEKDAYS)}")
        days.add(_WEEKDAYS[item])
    if len(days) == len(_WEEKDAYS):
        raise ValueError(f"{where}: every day of the week is a weekend day")
    return frozenset(days)


def _mapping(node: object, where: str) -> dict[str, object]:
    if not isinstance(node, dict):
        raise ValueError(f"{where}: expected a mapping, got {node!r}")
    return {str(key): value for key, value in node.items()}


def _reject_unknown_keys(fields: Mapping[str, object], known: frozenset[str], where: str) -> None:
    # A misspelt key ("workday:") would otherwise drop its data without a word.
    unknown = sorted(set(fields) - known)
    if unknown:
        expected = ", ".join(sorted(known))
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected one of {expected})")


def _string(node: object, where: str) -> str:
    if not isinstance(node, str) or not node:
        raise ValueError(f"{where}: expected a non-empty string, got {node!r}")
    return node


def _boolean(node: object, where: str) -> bool:
    if node not in ("true", "false"):
        raise ValueError(f"{where}: expected true or false, got {node!r}")
    return node == "true"


def _require_plain_date(d: date) -> None:
    # datetime is a subclass of date but never equals one, so a lookup would silently miss.
    if isinstance(d, datetime):
        raise TypeError(f"expected a date, got the datetime {d.isoformat()}")
