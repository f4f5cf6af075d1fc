//! Property tests: random mutations of real captured frames never make the parser
//! panic, and values survive the trip from PostgreSQL text to JSON.

use bytes::Bytes;
use dbmazz::source::parser::PgOutputParser;
use dbmazz::source::values::{encode_json, write_json_string, JsonTarget, PgType};
use proptest::prelude::*;

fn load(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/benches/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let all = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 4 <= all.len() {
        let len = u32::from_be_bytes([all[at], all[at + 1], all[at + 2], all[at + 3]]) as usize;
        frames.push(all[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    frames
}

fn corpus() -> &'static [Vec<u8>] {
    static FRAMES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FRAMES.get_or_init(|| {
        let mut f = load("all_kinds.pgout");
        f.extend(load("insert_heavy.pgout").into_iter().take(200));
        f
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Overwrite 4 bytes with an extreme big-endian value (lengths, counts).
    Length(usize, u32),
    Length16(usize, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u32),
                Just(u32::MAX),
                Just(0x7FFF_FFFF),
                Just(0x8000_0000),
                Just(0x4000_0000),
                any::<u32>()
            ]
        )
            .prop_map(|(i, v)| Mutation::Length(i, v)),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u16),
                Just(0x7FFF),
                Just(0xFFFF),
                Just(0x8000),
                any::<u16>()
            ]
        )
            .prop_map(|(i, v)| Mutation::Length16(i, v)),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    let n = frame.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if let Some(x) = frame.get_mut(i % n) {
                *x ^= b;
            }
        }
        Mutation::Set(i, b) => {
            if let Some(x) = frame.get_mut(i % n) {
                *x = *b;
            }
        }
        Mutation::Truncate(i) => frame.truncate(i % n),
        Mutation::Insert(i, v) => {
            let at = i % (frame.len() + 1);
            frame.splice(at..at, v.iter().copied());
        }
        Mutation::Remove(i, k) => {
            let at = i % n;
            let end = (at + k).min(frame.len());
            if at < end {
                frame.drain(at..end);
            }
        }
        Mutation::Length(i, v) => {
            if frame.len() >= 4 {
                let at = i % (frame.len() - 3);
                frame[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        Mutation::Length16(i, v) => {
            if frame.len() >= 2 {
                let at = i % (frame.len() - 1);
                frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn mutated_frames_never_panic(
        idx in any::<usize>(),
        muts in prop::collection::vec(mutation(), 1..6),
        streaming in any::<bool>(),
    ) {
        let frames = corpus();
        let mut frame = frames[idx % frames.len()].clone();
        for m in &muts {
            apply(&mut frame, m);
        }
        let mut p = PgOutputParser::new();
        if streaming {
            let start = Bytes::from_static(&[b'S', 0, 0, 0, 7, 1]);
            prop_assert!(p.parse(&start).is_ok());
        }
        let bytes = Bytes::from(frame);
        match p.parse(&bytes) {
            Ok(_) => {}
            Err(e) => {
                // Errors point inside the message.
                prop_assert!(e.offset <= bytes.len());
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn unmutated_frames_parse(idx in any::<usize>()) {
        // Baseline for the test above: every captured frame is valid in order.
        let _ = idx;
        let mut p = PgOutputParser::new();
        for f in corpus().iter().take(300) {
            prop_assert!(p.parse(&Bytes::from(f.clone())).is_ok());
        }
    }

    #[test]
    fn strings_round_trip(s in any::<String>()) {
        let mut out = Vec::new();
        write_json_string(&s, &mut out);
        let back: String = sonic_rs::from_slice(&out).expect("valid JSON string");
        prop_assert_eq!(back, s);
    }

    #[test]
    fn integers_round_trip(v in any::<i64>()) {
        let mut out = Vec::new();
        encode_json(&PgType::Integer, &v.to_string(), JsonTarget::Native, &mut out).expect("int");
        let back: i64 = sonic_rs::from_slice(&out).expect("number");
        prop_assert_eq!(back, v);
    }

    #[test]
    fn floats_round_trip(v in any::<f64>()) {
        // PostgreSQL's shortest-exact output (extra_float_digits >= 1) matches Rust's
        // `{:?}` digits; spell it the way PostgreSQL does.
        let text = if v.is_nan() {
            "NaN".to_string()
        } else if v.is_infinite() {
            if v > 0.0 { "Infinity".into() } else { "-Infinity".into() }
        } else {
            format!("{v:e}").replace("e", "e+").replace("e+-", "e-")
        };
        let mut out = Vec::new();
        encode_json(&PgType::Float, &text, JsonTarget::Native, &mut out).expect("float");
        if v.is_finite() {
            let back: f64 = sonic_rs::from_slice(&out).expect("number");
            // Bit-exact except the sign of zero, which JSON readers may drop.
            prop_assert!(back == v && (v != 0.0 || back == 0.0));
        } else {
            let back: String = sonic_rs::from_slice(&out).expect("string");
            prop_assert_eq!(back, text);
        }
    }

    #[test]
    fn numerics_stay_exact(neg in any::<bool>(), int in "[1-9][0-9]{0,60}|0", frac in proptest::option::of("[0-9]{1,40}")) {
        let text = format!("{}{}{}", if neg { "-" } else { "" }, int, frac.map(|f| format!(".{f}")).unwrap_or_default());
        let mut out = Vec::new();
        encode_json(&PgType::Numeric, &text, JsonTarget::Native, &mut out).expect("numeric");
        let back: String = sonic_rs::from_slice(&out).expect("string");
        prop_assert_eq!(back, text);
    }

    #[test]
    fn text_arrays_round_trip(elems in prop::collection::vec(proptest::option::of(any::<String>()), 0..8)) {
        // Build PostgreSQL's array text output: every element quoted and escaped.
        let mut text = String::from("{");
        for (i, e) in elems.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            match e {
                None => text.push_str("NULL"),
                Some(s) => {
                    text.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            text.push('\\');
                        }
                        text.push(c);
                    }
                    text.push('"');
                }
            }
        }
        text.push('}');
        let mut out = Vec::new();
        encode_json(&PgType::Array(Box::new(PgType::Text)), &text, JsonTarget::Native, &mut out).expect("array");
        let back: Vec<Option<String>> = sonic_rs::from_slice(&out).expect("json array");
        prop_assert_eq!(back, elems);
    }

    #[test]
    fn timestamptz_converts_to_utc(
        y in 1900i64..2200, mo in 1u32..=12, d in 1u32..=28, h in 0u32..24, mi in 0u32..60, s in 0u32..60,
        frac in proptest::option::of("[0-9]{1,6}"),
        off_sign in any::<bool>(), off_h in 0u32..15, off_m in prop_oneof![Just(0u32), Just(30), Just(45), 0u32..60],
        off_s in prop_oneof![Just(0u32), 0u32..60],
    ) {
        let off = format!(
            "{}{:02}{}",
            if off_sign { '+' } else { '-' },
            off_h,
            match (off_m, off_s) {
                (0, 0) => String::new(),
                (m, 0) => format!(":{m:02}"),
                (m, s) => format!(":{m:02}:{s:02}"),
            }
        );
        let fr = frac.as_ref().map(|f| format!(".{f}")).unwrap_or_default();
        let text = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{fr}{off}");
        let mut out = Vec::new();
        encode_json(&PgType::TimestampTz, &text, JsonTarget::Native, &mut out).expect("timestamptz");
        let utc: String = sonic_rs::from_slice(&out).expect("string");
        // Independent check: seconds since year 1 by naive counting.
        let secs = |y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32| -> i64 {
            let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let mut days = 0i64;
            for yy in 1..y { days += if leap(yy) { 366 } else { 365 }; }
            let ml = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            for m in 1..mo { days += ml[(m - 1) as usize]; }
            days += i64::from(d) - 1;
            days * 86400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)
        };
        let off_secs = (i64::from(off_h) * 3600 + i64::from(off_m) * 60 + i64::from(off_s)) * if off_sign { 1 } else { -1 };
        let want = secs(y, mo, d, h, mi, s) - off_secs;
        let p = |a: usize, b: usize| utc[a..b].parse::<i64>().expect("digits");
        let got = secs(p(0, 4), p(5, 7) as u32, p(8, 10) as u32, p(11, 13) as u32, p(14, 16) as u32, p(17, 19) as u32);
        prop_assert_eq!(got, want, "{} -> {}", text, utc);
        prop_assert_eq!(&utc[19..], fr.as_str());
    }
}
