//! RFC 3339 parsing and formatting in UTC, by hand: the engine needs only "timestamp in,
//! epoch seconds out" and back, which does not justify a date-time crate.

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn num(s: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(range)?;
    if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    part.iter().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Parses an RFC 3339 timestamp (`2026-11-20T03:14:07Z`, `…+02:00`, fractional seconds,
/// a space instead of `T`) into whole epoch seconds. A bare date (`2026-11-20`) is midnight UTC.
///
/// # Errors
/// Returns a short reason when the text is not a valid timestamp.
pub fn parse_rfc3339(text: &str) -> Result<i64, &'static str> {
    parse_rfc3339_precision(text).map(|(secs, _)| secs)
}

/// [`parse_rfc3339`], and whether the text gives only a day: a bare date, or a time of
/// exactly midnight in its own zone without fractional seconds (what feeds and converters
/// write when they know the date only; a real article stamped to that very second is rare).
///
/// # Errors
/// Returns a short reason when the text is not a valid timestamp.
pub fn parse_rfc3339_precision(text: &str) -> Result<(i64, bool), &'static str> {
    let s = text.trim().as_bytes();
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return Err("expected RFC 3339 like 2026-11-20T03:14:07Z");
    }
    let year = num(s, 0..4).ok_or("bad year")?;
    let month = num(s, 5..7)
        .filter(|m| (1..=12).contains(m))
        .ok_or("bad month")?;
    let day = num(s, 8..10).ok_or("bad day")?;
    if day == 0 || day > days_in_month(i64::from(year), month) {
        return Err("day out of range");
    }
    let days = days_from_civil(i64::from(year), month, day);
    if s.len() == 10 {
        return Ok((days * 86_400, true));
    }
    if !matches!(s[10], b'T' | b't' | b' ') || s.len() < 19 || s[13] != b':' || s[16] != b':' {
        return Err("expected a time like T03:14:07");
    }
    let hour = num(s, 11..13).filter(|h| *h < 24).ok_or("bad hour")?;
    let min = num(s, 14..16).filter(|m| *m < 60).ok_or("bad minute")?;
    // 60 is a leap second; it is folded into the next minute.
    let sec = num(s, 17..19).filter(|v| *v <= 60).ok_or("bad second")?;
    let mut i = 19;
    let fraction = s.get(i) == Some(&b'.');
    if fraction {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err("empty fractional seconds");
        }
    }
    let offset = match s.get(i) {
        Some(b'Z' | b'z') if i + 1 == s.len() => 0,
        Some(sign @ (b'+' | b'-')) if s.len() == i + 6 && s[i + 3] == b':' => {
            let oh = num(s, i + 1..i + 3)
                .filter(|h| *h < 24)
                .ok_or("bad offset")?;
            let om = num(s, i + 4..i + 6)
                .filter(|m| *m < 60)
                .ok_or("bad offset")?;
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' { off } else { -off }
        }
        None => return Err("missing time zone (Z or ±hh:mm)"),
        _ => return Err("bad time zone"),
    };
    let day_only = hour == 0 && min == 0 && sec == 0 && !fraction;
    Ok((
        days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset,
        day_only,
    ))
}

/// An instant given as RFC 3339 or as epoch seconds.
///
/// # Errors
/// A reason when it is neither.
pub fn parse_instant(text: &str) -> Result<i64, &'static str> {
    match text.trim().parse::<i64>() {
        Ok(secs) => Ok(secs),
        Err(_) => parse_rfc3339(text.trim()),
    }
}

/// Parses an RFC 3339 timestamp to epoch milliseconds (fractional seconds kept to the
/// millisecond).
///
/// # Errors
/// A reason when it is not RFC 3339.
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, &'static str> {
    let secs = parse_rfc3339(text)?;
    let ms = text.split_once('.').map_or(0, |(_, frac)| {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        let padded = format!("{digits:0<3}");
        padded[..3].parse::<i64>().unwrap_or(0)
    });
    Ok(secs.saturating_mul(1000).saturating_add(ms))
}

/// Formats epoch seconds as `YYYY-MM-DDThh:mm:ssZ`.
pub fn format_rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Formats epoch milliseconds as `YYYY-MM-DDThh:mm:ss.mmmZ` (the bus's timestamp style).
pub fn format_rfc3339_millis(epoch_ms: i64) -> String {
    let base = format_rfc3339(epoch_ms.div_euclid(1000));
    format!(
        "{}.{:03}Z",
        &base[..base.len() - 1],
        epoch_ms.rem_euclid(1000)
    )
}

/// The current time in epoch milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2026-11-20T00:00:00Z"), Ok(1_795_132_800));
        assert_eq!(
            parse_rfc3339("2026-11-20T02:00:00+02:00"),
            Ok(1_795_132_800)
        );
        assert_eq!(
            parse_rfc3339("2026-11-19T21:30:00.123-02:30"),
            Ok(1_795_132_800)
        );
        assert_eq!(parse_rfc3339("2026-11-20 00:00:00z"), Ok(1_795_132_800));
        assert_eq!(parse_rfc3339("2026-11-20"), Ok(1_795_132_800));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00Z"), Ok(1_709_208_000));
    }

    #[test]
    fn bare_dates_and_exact_midnight_give_a_day() {
        for (text, day) in [
            ("2026-11-20", true),
            ("2026-11-20T00:00:00Z", true),
            ("2026-11-20T00:00:00+02:00", true),
            ("2026-11-20T00:00:00.000Z", false),
            ("2026-11-20T00:00:01Z", false),
            ("2026-11-20T02:00:00+02:00", false),
        ] {
            assert_eq!(parse_rfc3339_precision(text).unwrap().1, day, "{text}");
        }
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-20T25:00:00Z",
            "2026-11-20T00:00:00",
            "2026-11-20T00:00:00+0200",
            "2026-11-20T00:00:00.Z",
            "2026-11-20T00:00:00Zjunk",
            "२०२६-11-20",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn round_trips() {
        for t in [
            0,
            1,
            86_399,
            951_782_400,
            1_795_132_800,
            -86_401,
            4_102_444_800,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Ok(t), "{t}");
        }
        assert_eq!(
            format_rfc3339_millis(1_795_132_800_042),
            "2026-11-20T00:00:00.042Z"
        );
    }
}
