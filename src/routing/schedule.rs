//! A proxy's `schedule` (docs/routing.md, routing policy): windows of local wall-clock time
//! in an IANA time zone, with dates on which no window starts. Pure: the instant comes in.
//!
//! The instant is turned into the zone's wall-clock time once, and only that is compared: a
//! local time that a DST change skips is never the wall-clock time of any instant, so it never
//! matches; a repeated hour is the wall-clock time of two instants, and both match.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::json::{Json, Path};
use super::problems::Problems;

pub const MAX_WINDOWS: usize = 20;
pub const MAX_EXCEPT_DATES: usize = 366;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A validated, compiled `schedule`.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    zone: TimeZone,
    windows: Box<[Window]>,
    /// Sorted, for binary search.
    except: Box<[Date]>,
}

/// `start` ≤ t < `end` (minutes of the day) on the `days` (bit 0 Monday); `end` ≤ `start`
/// runs past midnight and belongs to its start day (equal: 24 hours).
#[derive(Debug, Clone, Copy)]
struct Window {
    days: u8,
    start: u16,
    end: u16,
}

fn day_bit(date: Date) -> u8 {
    1 << date.weekday().to_monday_zero_offset()
}

impl Schedule {
    /// True when `at`, in the zone's wall-clock time, falls in one of the windows.
    pub(crate) fn covers(&self, at: Timestamp) -> bool {
        let local = self.zone.to_datetime(at);
        let date = local.date();
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        let starts_on = |d: Date, days: u8| days & day_bit(d) != 0 && !self.excepted(d);
        let yesterday = date.yesterday().ok();
        self.windows.iter().any(|w| {
            if w.end > w.start {
                w.start <= minute && minute < w.end && starts_on(date, w.days)
            } else {
                (minute >= w.start && starts_on(date, w.days))
                    || (minute < w.end && yesterday.is_some_and(|y| starts_on(y, w.days)))
            }
        })
    }

    fn excepted(&self, date: Date) -> bool {
        self.except.binary_search(&date).is_ok()
    }
}

/// Validates a `schedule` member, every problem with its pointer.
pub(crate) fn check(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<Schedule> {
    let [timezone, windows, except] =
        problems.members(v, pointer, ["timezone", "windows", "except"], &["windows"])?;
    let before = problems.len();
    let zone = match timezone {
        None => Some(TimeZone::UTC),
        Some(tz) => {
            let tz_pointer = pointer.member("timezone");
            problems
                .string(tz, tz_pointer)
                .and_then(|name| match TimeZone::get(name) {
                    Ok(zone) if !name.eq_ignore_ascii_case("Etc/Unknown") => Some(zone),
                    _ => {
                        problems.add(
                            tz_pointer,
                            format!(
                                "`{}` is not an IANA time zone name (such as Europe/Berlin or UTC)",
                                super::sip::printable(name)
                            ),
                        );
                        None
                    }
                })
        }
    };
    let windows = windows.and_then(|w| check_windows(w, pointer.member("windows"), problems));
    let except = match except {
        None => Some(Vec::new()),
        Some(e) => check_except(e, pointer.member("except"), problems),
    };
    if problems.len() != before {
        return None;
    }
    let mut except = except?;
    except.sort_unstable();
    Some(Schedule {
        zone: zone?,
        windows: windows?.into_boxed_slice(),
        except: except.into_boxed_slice(),
    })
}

fn check_windows(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<Vec<Window>> {
    let items = match v {
        Json::Arr(items) if (1..=MAX_WINDOWS).contains(&items.len()) => items,
        Json::Arr(items) => {
            problems.add(
                pointer,
                format!(
                    "invalid length {}, expected 1 to {MAX_WINDOWS} windows",
                    items.len()
                ),
            );
            return None;
        }
        other => {
            problems.wrong_type(pointer, other, "an array of windows");
            return None;
        }
    };
    let windows: Vec<Option<Window>> = items
        .iter()
        .enumerate()
        .map(|(i, w)| check_window(w, pointer.index(i), problems))
        .collect();
    windows.into_iter().collect()
}

fn check_window(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<Window> {
    let fields = ["days", "start", "end"];
    let [days, start, end] = problems.members(v, pointer, fields, &fields)?;
    let days = days.and_then(|d| check_days(d, pointer.member("days"), problems));
    let start = start.and_then(|s| check_time(s, pointer.member("start"), false, problems));
    let end = end.and_then(|e| check_time(e, pointer.member("end"), true, problems));
    Some(Window {
        days: days?,
        start: start?,
        end: end?,
    })
}

fn check_days(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<u8> {
    let Json::Arr(items) = v else {
        problems.wrong_type(pointer, v, "an array of days (mon … sun)");
        return None;
    };
    if items.is_empty() {
        problems.add(pointer, "days is empty; name at least one of mon … sun");
        return None;
    }
    let mut bits = 0u8;
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_pointer = pointer.index(i);
        let Some(name) = problems.string(item, item_pointer) else {
            ok = false;
            continue;
        };
        match DAY_NAMES.iter().position(|d| *d == name) {
            Some(day) if bits & (1 << day) != 0 => {
                problems.add(item_pointer, format!("`{name}` is given more than once"));
                ok = false;
            }
            Some(day) => bits |= 1 << day,
            None => {
                problems.add(
                    item_pointer,
                    format!(
                        "`{}` is not a day; expected one of mon, tue, wed, thu, fri, sat, sun \
                         (lowercase)",
                        super::sip::printable(name)
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(bits)
}

/// `HH:MM` as minutes of the day; `24:00` only for an `end`.
fn check_time(v: &Json, pointer: Path<'_>, is_end: bool, problems: &mut Problems) -> Option<u16> {
    let s = problems.string(v, pointer)?;
    let parsed = parse_hh_mm(s).filter(|&m| m < MINUTES_PER_DAY || (is_end && m == 1440));
    if parsed.is_none() {
        let range = if is_end {
            "00:00 to 24:00"
        } else {
            "00:00 to 23:59"
        };
        problems.add(
            pointer,
            format!(
                "`{}` is not a time HH:MM from {range}",
                super::sip::printable(s)
            ),
        );
    }
    parsed
}

fn parse_hh_mm(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let digit = |i: usize| u16::from(b[i] - b'0');
    let (hour, minute) = (digit(0) * 10 + digit(1), digit(3) * 10 + digit(4));
    match (hour, minute) {
        (0..=23, 0..=59) => Some(hour * 60 + minute),
        (24, 0) => Some(MINUTES_PER_DAY),
        _ => None,
    }
}

fn check_except(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<Vec<Date>> {
    let items = match v {
        Json::Arr(items) if items.len() <= MAX_EXCEPT_DATES => items,
        Json::Arr(items) => {
            problems.add(
                pointer,
                format!(
                    "invalid length {}, expected at most {MAX_EXCEPT_DATES} dates",
                    items.len()
                ),
            );
            return None;
        }
        other => {
            problems.wrong_type(pointer, other, "an array of dates YYYY-MM-DD");
            return None;
        }
    };
    let mut dates = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_pointer = pointer.index(i);
        let Some(s) = problems.string(item, item_pointer) else {
            ok = false;
            continue;
        };
        match parse_date(s) {
            Some(date) => dates.push(date),
            None => {
                problems.add(
                    item_pointer,
                    format!("`{}` is not a date YYYY-MM-DD", super::sip::printable(s)),
                );
                ok = false;
            }
        }
    }
    ok.then_some(dates)
}

/// Exactly `YYYY-MM-DD`, an existing day.
fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9];
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits.iter().all(|&i| b[i].is_ascii_digit())
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i16>().ok();
    Date::new(
        n(0..4)?,
        i8::try_from(n(5..7)?).ok()?,
        i8::try_from(n(8..10)?).ok()?,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates() {
        assert_eq!(parse_hh_mm("00:00"), Some(0));
        assert_eq!(parse_hh_mm("23:59"), Some(1439));
        assert_eq!(parse_hh_mm("24:00"), Some(1440));
        for bad in ["24:01", "7:00", "07:60", "0700", "07:00 ", "+7:00"] {
            assert_eq!(parse_hh_mm(bad), None, "{bad}");
        }
        assert!(parse_date("2026-12-25").is_some());
        assert!(parse_date("2024-02-29").is_some());
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-12-25",
            "2026/12/25",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
