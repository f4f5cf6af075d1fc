//! Dates and timestamps as PostgreSQL prints them with `DateStyle=ISO` and
//! `TimeZone=UTC` (pinned by the replication connection), parsed without
//! allocating, checked, and written in the form StarRocks loads.

use crate::clock::{civil_from_days, days_from_civil};

fn two(b: &[u8], at: usize) -> Option<u32> {
    let d = b.get(at..at + 2)?;
    if d[0].is_ascii_digit() && d[1].is_ascii_digit() {
        Some(u32::from(d[0] - b'0') * 10 + u32::from(d[1] - b'0'))
    } else {
        None
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD` with a 4-digit year 0001..9999 (rejects BC, infinity, 5-digit years).
pub(super) fn parse_date(b: &[u8]) -> Option<(i64, u32, u32)> {
    if b.len() < 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let y = i64::from(two(b, 0)? * 100 + two(b, 2)?);
    let m = two(b, 5)?;
    let d = two(b, 8)?;
    if y == 0 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

pub(super) struct Ts<'a> {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    frac: &'a [u8],
    offset_secs: i64,
}

impl Ts<'_> {
    pub(super) fn to_utc(&self) -> Option<Self> {
        if self.offset_secs == 0 {
            return Some(Ts {
                frac: self.frac,
                ..*self
            });
        }
        let days = days_from_civil(self.y, self.mo, self.d);
        let secs =
            days * 86400 + i64::from(self.h) * 3600 + i64::from(self.mi) * 60 + i64::from(self.s)
                - self.offset_secs;
        let day = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400);
        let (y, mo, d) = civil_from_days(day);
        if !(1..=9999).contains(&y) {
            return None;
        }
        Some(Ts {
            y,
            mo,
            d,
            h: (rem / 3600) as u32,
            mi: (rem % 3600 / 60) as u32,
            s: (rem % 60) as u32,
            frac: self.frac,
            offset_secs: 0,
        })
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f{1,6}]` and, with `tz`, `(+|-)HH[:MM[:SS]]`.
pub(super) fn parse_timestamp(b: &[u8], tz: bool) -> Option<Ts<'_>> {
    let (y, mo, d) = parse_date(b)?;
    if b.len() < 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let h = two(b, 11)?;
    let mi = two(b, 14)?;
    let s = two(b, 17)?;
    // 24:00:00 is not a valid timestamp time; leap seconds are not printed.
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    let mut frac: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == start || j - start > 6 {
            return None;
        }
        frac = &b[start..j];
        i = j;
    }
    let mut offset_secs = 0i64;
    if tz {
        let sign = match b.get(i) {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return None,
        };
        let oh = two(b, i + 1)?;
        i += 3;
        let mut om = 0;
        let mut os = 0;
        if b.get(i) == Some(&b':') {
            om = two(b, i + 1)?;
            i += 3;
            if b.get(i) == Some(&b':') {
                os = two(b, i + 1)?;
                i += 3;
            }
        }
        if oh > 15 || om > 59 || os > 59 {
            return None;
        }
        offset_secs = sign * (i64::from(oh) * 3600 + i64::from(om) * 60 + i64::from(os));
    }
    if i != b.len() {
        // " BC" or anything else.
        return None;
    }
    Some(Ts {
        y,
        mo,
        d,
        h,
        mi,
        s,
        frac,
        offset_secs,
    })
}

pub(super) fn write_timestamp(ts: &Ts<'_>, out: &mut Vec<u8>) {
    let push2 = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    let y = ts.y as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push(b'-');
    push2(out, ts.mo);
    out.push(b'-');
    push2(out, ts.d);
    out.push(b' ');
    push2(out, ts.h);
    out.push(b':');
    push2(out, ts.mi);
    out.push(b':');
    push2(out, ts.s);
    if !ts.frac.is_empty() {
        out.push(b'.');
        out.extend_from_slice(ts.frac);
    }
}
