//! The RFC 3339 writer: times written as `time::serde::rfc3339` writes them, without
//! allocating.

use serde::Serializer;
use time::OffsetDateTime;

/// Writes `time` as `time::serde::rfc3339` does, without allocating the `String` that
/// does: every subscription written (one per response, a hundred per search page) has
/// a creation time, and every notification a start and an end time.
pub(crate) fn rfc3339_on_the_stack<S: Serializer>(
    time: &OffsetDateTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut buffer = [0; RFC3339_ROOM];
    let written = rfc3339(time, &mut buffer).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(std::str::from_utf8(written).map_err(serde::ser::Error::custom)?)
}

/// Room for RFC 3339 as `time` writes it: at most 35 bytes
/// (`9999-12-31T23:59:59.999999999+23:59`).
pub(super) const RFC3339_ROOM: usize = 40;

/// Writes `time` in RFC 3339 into `buffer` (ASCII, so valid UTF-8), byte for byte as
/// `time::serde::rfc3339` does (a test compares them over years, fractions and
/// offsets), failing where that fails, in the same order and with the same error: a
/// year RFC 3339 cannot write, an offset of more than 23 hours, an offset with seconds.
/// Written out here rather than through `time`'s general formatter, which took ~770
/// instructions a timestamp, where this takes under 300: the difference was a tenth of
/// what the HTTP handler adds to a subscribe.
pub(super) fn rfc3339<'b>(
    time: &OffsetDateTime,
    buffer: &'b mut [u8; RFC3339_ROOM],
) -> Result<&'b [u8], time::error::Format> {
    use time::error::Format::InvalidComponent;
    let (year, month, day) = time.to_calendar_date();
    let year = u16::try_from(year)
        .ok()
        .filter(|&year| year < 10_000)
        .ok_or(InvalidComponent("year"))?;
    let offset = time.offset();
    let (offset_hours, offset_minutes, offset_seconds) = offset.as_hms();
    if offset_hours.unsigned_abs() > 23 {
        return Err(InvalidComponent("offset_hour"));
    }
    if offset_seconds != 0 {
        return Err(InvalidComponent("offset_second"));
    }
    // Each below 100, so `n / 10` is one digit.
    let two_digits = |n: u8| [b'0' + n / 10, b'0' + n % 10];
    // Below 10,000, so both halves are below 100 and fit a u8.
    let [y1, y2] = two_digits((year / 100) as u8);
    let [y3, y4] = two_digits((year % 100) as u8);
    let [mo1, mo2] = two_digits(u8::from(month));
    let [d1, d2] = two_digits(day);
    let (hour, minute, second, nanosecond) = time.to_hms_nano();
    let [h1, h2] = two_digits(hour);
    let [mi1, mi2] = two_digits(minute);
    let [s1, s2] = two_digits(second);
    let date_and_time = [
        y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2,
    ];
    buffer[..date_and_time.len()].copy_from_slice(&date_and_time);
    let mut written = date_and_time.len();
    if nanosecond != 0 {
        // Nine digits, without the zeros they end with (at least one digit is not zero).
        let mut digits = [b'0'; 9];
        let mut rest = nanosecond;
        for digit in digits.iter_mut().rev() {
            // Below ten, so the cast cannot truncate.
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let kept = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        buffer[written] = b'.';
        // All nine, since there is room: a copy of known length is a few moves, not a
        // call. What follows the kept digits is written over or left out.
        buffer[written + 1..written + 10].copy_from_slice(&digits);
        written += 1 + kept;
    }
    if offset.is_utc() {
        buffer[written] = b'Z';
        written += 1;
    } else {
        let sign = if offset.is_negative() { b'-' } else { b'+' };
        let [oh1, oh2] = two_digits(offset_hours.unsigned_abs());
        let [om1, om2] = two_digits(offset_minutes.unsigned_abs());
        buffer[written..written + 6].copy_from_slice(&[sign, oh1, oh2, b':', om1, om2]);
        written += 6;
    }
    Ok(&buffer[..written])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rfc3339` spells out what `time`'s `Rfc3339` format writes: the same text, or the
    /// same error, at the edges of every part (and of their errors' order) and over
    /// 20,000 random values across the whole range of dates `time` holds.
    #[test]
    fn creation_times_are_written_as_time_writes_them() {
        use time::format_description::well_known::Rfc3339;
        use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

        let check = |at: OffsetDateTime| {
            let mut buffer = [0; RFC3339_ROOM];
            let ours = rfc3339(&at, &mut buffer)
                .map(|written| String::from_utf8(written.to_vec()).unwrap())
                .map_err(|e| e.to_string());
            let theirs = at.format(&Rfc3339).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{at:?}");
            ours.is_ok()
        };
        let offset = |h, m, s| UtcOffset::from_hms(h, m, s).unwrap();
        let offsets = [
            UtcOffset::UTC,
            offset(0, 1, 0),
            offset(0, -1, 0),
            offset(0, -30, 0),
            offset(5, 30, 0),
            offset(-8, 0, 0),
            offset(23, 59, 0),
            offset(-23, -59, 0),
            // No RFC 3339 form: more than 23 hours, or seconds, or both (the hours are
            // named first).
            offset(24, 0, 0),
            offset(-25, 0, 0),
            offset(1, 0, 30),
            offset(0, 0, -1),
            offset(24, 0, 1),
            offset(-25, -59, -59),
        ];
        let nanoseconds = [
            0,
            1,
            9,
            10,
            100,
            1_000,
            1_000_000,
            100_000_000,
            120_000_000,
            123_456_789,
            500_000_000,
            987_654_320,
            999_999_999,
        ];
        let dates = [
            (0, Month::January, 1),
            (1, Month::February, 28),
            (9, Month::March, 9),
        ]
        .into_iter()
        .chain([
            (10, Month::April, 30),
            (99, Month::May, 31),
            (100, Month::June, 1),
        ])
        .chain([(999, Month::September, 9), (1000, Month::October, 10)])
        .chain([(1970, Month::January, 1), (2024, Month::February, 29)])
        .chain([(9999, Month::December, 31), (-1, Month::December, 31)])
        .chain([(-9999, Month::January, 1)])
        .map(|(y, m, d)| Date::from_calendar_date(y, m, d).unwrap());
        let times = [(0, 0, 0), (23, 59, 59), (12, 34, 56), (9, 5, 1)];
        let mut written = 0;
        for date in dates {
            for (h, m, s) in times {
                for (n, &nanosecond) in nanoseconds.iter().enumerate() {
                    let time = Time::from_hms_nano(h, m, s, nanosecond).unwrap();
                    let at = PrimitiveDateTime::new(date, time);
                    for offset in [offsets[n % offsets.len()], UtcOffset::UTC] {
                        written += usize::from(check(at.assume_offset(offset)));
                    }
                }
            }
        }
        // A sweep: dates across time's whole range, fractions with 0-9 digits.
        let (first, last) = (Date::MIN.to_julian_day(), Date::MAX.to_julian_day());
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        for _ in 0..20_000 {
            let day = first + (next() % (last - first + 1) as u64) as i32;
            let seconds = (next() % 86_400) as u32;
            let zeros = 10u32.pow((next() % 10) as u32);
            let nanosecond = (next() % 1_000_000_000) as u32 / zeros * zeros;
            let time = Time::from_hms_nano(
                (seconds / 3600) as u8,
                (seconds / 60 % 60) as u8,
                (seconds % 60) as u8,
                nanosecond,
            )
            .unwrap();
            let offset = offsets[next() as usize % offsets.len()];
            let date = Date::from_julian_day(day).unwrap();
            written += usize::from(check(
                PrimitiveDateTime::new(date, time).assume_offset(offset),
            ));
        }
        assert!(written > 5_000, "{written} written");
    }
}
