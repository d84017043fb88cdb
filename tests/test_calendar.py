"""The China working-day calendar: its data against the notices, its arithmetic, its validator."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from domain.calendar import WorkingDayCalendar, load_calendar, load_calendar_file

BEIJING = timezone(timedelta(hours=8))
COVERED_YEARS = tuple(range(2008, 2027))


@pytest.fixture(scope="module")
def cn() -> WorkingDayCalendar:
    return load_calendar("cn")


# --- the data, spot-checked against the notices ------------------------------------------------

WORKING = [
    (date(2024, 2, 4), "2024 notice: Sunday make-up day before the Spring Festival"),
    (date(2024, 2, 18), "2024 notice: Sunday make-up day after the Spring Festival"),
    (date(2024, 2, 9), "2024 notice: New Year's Eve is only 'encouraged' off, still a working day"),
    (date(2020, 1, 19), "2020 notice: Sunday make-up day"),
    (date(2020, 2, 3), "2020 extension notice: work resumes on Monday 3 February"),
    (date(2019, 9, 29), "2019 notice: Sunday make-up day for National Day"),
    (date(2019, 10, 12), "2019 notice: Saturday make-up day for National Day"),
    (date(2019, 10, 8), "2019 notice: first day back after National Day"),
    (date(2019, 4, 28), "2019 Labour Day adjustment: Sunday make-up day"),
    (date(2019, 5, 5), "2019 Labour Day adjustment: Sunday make-up day"),
    (date(2018, 12, 29), "2019 notice: Saturday make-up day, filed under 2018"),
    (date(2011, 12, 31), "2012 notice: Saturday make-up day, filed under 2011"),
    (date(2015, 9, 6), "2015 victory-day notice: Sunday make-up day"),
    (date(2008, 5, 4), "2008 notice: Sunday make-up day for Labour Day"),
    (date(2025, 2, 8), "2025 notice: Saturday make-up day"),
    (date(2026, 1, 4), "2026 notice: Sunday make-up day after New Year"),
    (date(2026, 2, 28), "2026 notice: Saturday make-up day after the Spring Festival"),
]

NOT_WORKING = [
    (date(2024, 2, 12), "2024 notice: Spring Festival, a Monday"),
    (date(2024, 2, 17), "2024 notice: last day of the Spring Festival block"),
    (date(2020, 1, 31), "2020 extension notice: Friday added to the Spring Festival"),
    (date(2020, 2, 1), "2020 extension notice: the Saturday make-up day was dropped"),
    (date(2020, 2, 2), "2020 extension notice: holiday extended to Sunday 2 February"),
    (date(2019, 5, 2), "2019 Labour Day adjustment: holiday grew to 1-4 May"),
    (date(2019, 5, 3), "2019 Labour Day adjustment"),
    (date(2018, 12, 31), "2019 notice: New Year block starts in 2018"),
    (date(2015, 9, 3), "2015 victory-day notice"),
    (date(2015, 9, 4), "2015 victory-day notice: the Friday taken in lieu"),
    (date(2014, 4, 7), "2014 notice: Qingming 补休 on Monday 7 April"),
    (date(2008, 4, 4), "2008: first year Qingming is a public holiday"),
    (date(2008, 6, 9), "2008: first Dragon Boat holiday, Monday in lieu"),
    (date(2008, 9, 15), "2008: first Mid-Autumn holiday, Monday in lieu"),
    (date(2025, 1, 28), "2025 notice: New Year's Eve is a statutory day off from 2025"),
    (date(2025, 10, 8), "2025 notice: National Day and Mid-Autumn together, eight days"),
    (date(2026, 2, 23), "2026 notice: nine-day Spring Festival ends on a Monday"),
]


@pytest.mark.parametrize(("day", "why"), WORKING)
def test_working_days_from_the_notices(cn: WorkingDayCalendar, day: date, why: str) -> None:
    assert cn.is_working_day(day), why


@pytest.mark.parametrize(("day", "why"), NOT_WORKING)
def test_days_off_from_the_notices(cn: WorkingDayCalendar, day: date, why: str) -> None:
    assert not cn.is_working_day(day), why


def test_national_day_2019_block_and_its_make_up_days(cn: WorkingDayCalendar) -> None:
    block = [date(2019, 10, 1) + timedelta(days=i) for i in range(7)]
    assert not any(cn.is_working_day(day) for day in block)
    assert cn.is_working_day(date(2019, 9, 29)) and cn.is_working_day(date(2019, 10, 12))
    schedule = cn.schedule(2019)
    assert schedule is not None
    assert set(block) <= schedule.holidays
    assert {date(2019, 9, 29), date(2019, 10, 12)} <= schedule.workdays


def test_ordinary_weekdays_and_weekends(cn: WorkingDayCalendar) -> None:
    assert cn.is_working_day(date(2024, 3, 5))  # Tuesday
    assert not cn.is_working_day(date(2024, 3, 9))  # Saturday


# --- every year of the shipped file ---------------------------------------------------------------


def test_the_shipped_file_covers_2008_to_2026(cn: WorkingDayCalendar) -> None:
    assert cn.years == COVERED_YEARS
    assert not cn.covers(2007)
    assert not cn.covers(2027)


def test_load_calendar_is_cached() -> None:
    assert load_calendar() is load_calendar("cn")


@pytest.mark.parametrize("year", COVERED_YEARS)
def test_every_year_passes_the_validator_and_holds_the_fixed_holidays(year: int) -> None:
    # Loading the file without the cache reruns every check of the validator on this data.
    calendar = load_calendar_file(Path(__file__).parents[1] / "domain" / "calendars" / "cn.yaml")
    schedule = calendar.schedule(year)
    assert schedule is not None
    assert calendar.is_verified(year)
    assert all(day.year == year for day in schedule.holidays | schedule.workdays)
    assert all(day.weekday() >= 5 for day in schedule.workdays)
    assert not schedule.holidays & schedule.workdays
    # New Year's Day and the first three days of October are statutory every year.
    assert {date(year, 1, 1), date(year, 10, 1), date(year, 10, 2), date(year, 10, 3)} <= (
        schedule.holidays
    )


# Weekday holidays minus make-up days: the statutory days the year really lost. 11 a year until
# 2024 and 13 from 2025 (除夕 and 2 May were added). 2011/2012 trade one because the 2012 notice
# made 2011-12-31 a workday; 2015 adds the victory day; 2020 adds the epidemic extension (Friday
# 31 January off and the Saturday make-up day on 1 February dropped).
NET_DAYS_OFF = {year: 11 for year in COVERED_YEARS} | {
    2011: 10,
    2012: 12,
    2015: 12,
    2020: 13,
    2025: 13,
    2026: 13,
}


@pytest.mark.parametrize("year", COVERED_YEARS)
def test_each_year_loses_the_statutory_number_of_days(cn: WorkingDayCalendar, year: int) -> None:
    schedule = cn.schedule(year)
    assert schedule is not None
    weekday_holidays = sum(1 for day in schedule.holidays if day.weekday() < 5)
    assert weekday_holidays - len(schedule.workdays) == NET_DAYS_OFF[year]


def test_working_days_in_a_whole_year(cn: WorkingDayCalendar) -> None:
    # The widely published totals: 251 working days in 2024, 248 in 2025.
    assert cn.working_days_between(date(2023, 12, 31), date(2024, 12, 31)) == 251
    assert cn.working_days_between(date(2024, 12, 31), date(2025, 12, 31)) == 248


# --- uncovered years -----------------------------------------------------------------------------


def test_uncovered_years_fall_back_to_the_weekend_rule(cn: WorkingDayCalendar) -> None:
    assert cn.is_working_day(date(2027, 1, 1))  # a Friday; no 2027 data, so only weekends count
    assert not cn.is_working_day(date(2027, 1, 2))
    assert cn.is_working_day(date(2007, 12, 31))  # off per the 2008 notice, but 2007 is uncovered
    assert not cn.is_verified(2027)
    assert cn.schedule(2027) is None


def test_covers_span(cn: WorkingDayCalendar) -> None:
    assert cn.covers_span(date(2008, 1, 1), date(2026, 12, 31))
    assert not cn.covers_span(date(2026, 12, 30), date(2027, 1, 5))
    assert not cn.covers_span(date(2027, 1, 5), date(2026, 12, 30))


def test_a_datetime_is_refused_where_a_date_is_expected(cn: WorkingDayCalendar) -> None:
    with pytest.raises(TypeError, match="datetime"):
        cn.is_working_day(datetime(2024, 2, 12, 9, 0))


# --- add_working_days ----------------------------------------------------------------------------


def at(day: date, hour: int = 0, minute: int = 0, tz: timezone = BEIJING) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


def test_deadline_across_the_spring_festival_and_a_sunday_make_up_day(
    cn: WorkingDayCalendar,
) -> None:
    # Thursday 8 Feb 2024: day 1 is Friday the 9th, then 10-17 are off, day 2 is Sunday the 18th.
    deadline = cn.add_working_days(at(date(2024, 2, 8), 15, 0), 2)
    assert deadline == at(date(2024, 2, 19))
    assert deadline.utcoffset() == timedelta(hours=8)


def test_seven_working_days_across_national_day_2019(cn: WorkingDayCalendar) -> None:
    # From Friday 27 Sep: 29 (Sun, make-up), 30, then 1-7 Oct off, then 8, 9, 10, 11, 12 (Sat).
    assert cn.add_working_days(at(date(2019, 9, 27), 10, 0), 7) == at(date(2019, 10, 13))


def test_deadline_across_the_2020_extension(cn: WorkingDayCalendar) -> None:
    # From Thursday 23 Jan 2020 every day to 2 Feb is off, the make-up day 1 Feb included.
    assert cn.add_working_days(at(date(2020, 1, 23), 18, 0), 1) == at(date(2020, 2, 4))


def test_the_start_day_never_counts(cn: WorkingDayCalendar) -> None:
    monday = date(2024, 3, 4)
    assert cn.add_working_days(at(monday, 0, 0), 1) == at(date(2024, 3, 6))
    assert cn.add_working_days(at(monday, 23, 59), 1) == at(date(2024, 3, 6))


def test_a_start_on_a_weekend_counts_from_the_next_working_day(cn: WorkingDayCalendar) -> None:
    saturday = date(2024, 3, 2)
    assert cn.add_working_days(at(saturday, 12, 0), 1) == at(date(2024, 3, 5))


def test_zero_working_days_is_the_end_of_the_start_day(cn: WorkingDayCalendar) -> None:
    assert cn.add_working_days(at(date(2024, 2, 12), 9, 0), 0) == at(date(2024, 2, 13))


def test_the_local_date_is_taken_in_the_starts_own_offset(cn: WorkingDayCalendar) -> None:
    # One instant, two offsets: 00:30 on Friday 9 Feb in Beijing is still Thursday 8 Feb in UTC.
    beijing = at(date(2024, 2, 9), 0, 30)
    utc = beijing.astimezone(UTC)
    assert cn.add_working_days(beijing, 1) == at(date(2024, 2, 19))
    from_utc = cn.add_working_days(utc, 1)
    assert from_utc == at(date(2024, 2, 10), tz=UTC)
    assert from_utc.utcoffset() == timedelta(0)


def test_add_working_days_refuses_naive_starts_and_negative_counts(
    cn: WorkingDayCalendar,
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cn.add_working_days(datetime(2024, 2, 8, 9, 0), 1)
    with pytest.raises(ValueError, match="zero or more"):
        cn.add_working_days(at(date(2024, 2, 8)), -1)


def test_add_working_days_agrees_with_working_days_between(cn: WorkingDayCalendar) -> None:
    for offset in range(0, 60, 3):
        start = date(2020, 1, 10) + timedelta(days=offset)
        for n in (1, 2, 7):
            deadline = cn.add_working_days(at(start, 14, 0), n)
            last_day = deadline.date() - timedelta(days=1)
            assert cn.is_working_day(last_day)
            assert cn.working_days_between(start, last_day) == n


# --- working_days_between ------------------------------------------------------------------------


def test_working_days_between(cn: WorkingDayCalendar) -> None:
    assert cn.working_days_between(date(2024, 2, 8), date(2024, 2, 18)) == 2
    assert cn.working_days_between(date(2024, 2, 18), date(2024, 2, 8)) == -2
    assert cn.working_days_between(date(2024, 2, 8), date(2024, 2, 8)) == 0
    assert cn.working_days_between(date(2019, 9, 28), date(2019, 10, 12)) == 7


# --- the validator on malformed files -------------------------------------------------------------

VALID = """\
id: test
name: {en: "Test", zh: "测试"}
weekend: [sat, sun]
source: "made up for the tests"
years:
  2024:
    notice: "国办发明电〔2023〕7号"
    holidays: [2024-02-10, 2024-02-12]
    workdays: [2024-02-04]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads(tmp_path: Path) -> None:
    calendar = load_calendar_file(write(tmp_path, VALID))
    assert calendar.id == "test"
    assert calendar.covers(2024)
    assert calendar.is_working_day(date(2024, 2, 4))
    assert not calendar.is_working_day(date(2024, 2, 12))


MALFORMED = [
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: [2024-02-10, 2024/02/12]", "'2024/02/12'"),
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: [2024-02-10, 2024-2-12]", "'2024-2-12'"),
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: [2024-02-30]", "'2024-02-30'"),
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: [20240212]", "'20240212'"),
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: ['2024-02-12 09:00']", "2024-02-12 09:00"),
    ("workdays: [2024-02-04]", "workdays: [2024-02-05]", "2024-02-05 is a Monday"),
    ("workdays: [2024-02-04]", "workdays: [2024-02-10]", "2024-02-10 is listed both"),
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: [2023-12-31]", "2023-12-31"),
    ("workdays: [2024-02-04]", "workdays: [2025-01-26]", "2025-01-26"),
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: [2024-02-12, 2024-02-12]", "listed twice"),
    ("workdays: [2024-02-04]", "workday: [2024-02-04]", "unknown key 'workday'"),
    ("workdays: [2024-02-04]", "", "workdays is missing"),
    ("holidays: [2024-02-10, 2024-02-12]", "holidays: 2024-02-12", "expected a list"),
    ('notice: "国办发明电〔2023〕7号"', "verified: maybe", "'maybe'"),
]


@pytest.mark.parametrize(("old", "new", "value"), MALFORMED)
def test_malformed_year_data_names_file_year_and_value(
    tmp_path: Path, old: str, new: str, value: str
) -> None:
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ValueError) as error:
        load_calendar_file(path)
    message = str(error.value)
    assert str(path) in message
    assert "year 2024" in message
    assert value in message


def test_a_year_key_that_is_not_a_year(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("  2024:", "  24:"))
    with pytest.raises(ValueError, match="year key '24'") as error:
        load_calendar_file(path)
    assert str(path) in str(error.value)


def test_a_repeated_year_key(tmp_path: Path) -> None:
    repeated = VALID + "  2024:\n    holidays: []\n    workdays: []\n"
    path = write(tmp_path, repeated)
    with pytest.raises(ValueError, match="duplicate key '2024'") as error:
        load_calendar_file(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("weekend: [sat, sun]", "weekend: [saturday]", "'saturday'"),
        (
            "weekend: [sat, sun]",
            "weekend: [mon, tue, wed, thu, fri, sat, sun]",
            "every day of the week",
        ),
        ("years:", "yeers:", "unknown key 'yeers'"),
        ("id: test", "id: [test]", "id"),
        ("  2024:", "  2024: [", "not valid YAML"),
    ],
)
def test_malformed_file_level_data_names_the_file(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ValueError) as error:
        load_calendar_file(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_load_calendar_refuses_odd_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="plain lowercase word"):
        load_calendar("../cn")
    with pytest.raises(ValueError, match="no calendar named 'xx'"):
        load_calendar("xx")
