//! Fuzzes the pgoutput parser and the value decoder with real captured streams
//! as seeds (`fuzz/corpus/pgoutput`, written by `tests/source/capture.rs`).
//!
//! Input: a sequence of frames, each a 4-byte big-endian length and a payload,
//! parsed in order by one parser (so stream-block state is exercised); a final
//! partial frame is parsed as it is. Every text column of every decoded tuple is
//! then run through the JSON encoder as several types. Any panic is a bug.
//!
//! The parser files are compiled straight from the crate's sources so the fuzzer
//! builds in seconds instead of instrumenting the whole service.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/lsn.rs"]
mod lsn;

#[allow(dead_code)]
#[path = "../../src/clock.rs"]
mod clock;

#[allow(dead_code, unused_imports)]
#[path = "../../src/source"]
mod source {
    pub mod message;
    pub mod parser;
    pub mod values;
}

use source::message::{CdcMessage, ColumnKind, TupleData};
use source::parser::PgOutputParser;
use source::values::{encode_json, JsonTarget, PgType};

fn exercise(t: &TupleData, out: &mut Vec<u8>) {
    let types = [
        PgType::Bool,
        PgType::Integer,
        PgType::Float,
        PgType::Numeric,
        PgType::Bytea,
        PgType::Date,
        PgType::Timestamp,
        PgType::TimestampTz,
        PgType::Json,
        PgType::Text,
        PgType::Array(Box::new(PgType::Text)),
        PgType::Array(Box::new(PgType::Array(Box::new(PgType::Integer)))),
        PgType::Array(Box::new(PgType::Json)),
    ];
    for i in 0..=t.len() {
        let _ = t.kind(i);
        let _ = t.raw(i);
        let _ = t.bytes(i);
        if t.kind(i) == Some(ColumnKind::Text) {
            let Some(text) = t.text(i) else {
                panic!("text column {i} without a text view");
            };
            assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            for ty in &types {
                for target in [JsonTarget::Native, JsonTarget::Json] {
                    out.clear();
                    if encode_json(ty, text, target, out).is_ok() && target == JsonTarget::Native {
                        // Whatever is written must be valid JSON.
                        assert!(
                            sonic_rs::from_slice::<serde::de::IgnoredAny>(out).is_ok(),
                            "invalid JSON for {ty:?}"
                        );
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let all = Bytes::copy_from_slice(data);
    let mut parser = PgOutputParser::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at < all.len() {
        let frame = if at + 4 <= all.len() {
            let len = u32::from_be_bytes([all[at], all[at + 1], all[at + 2], all[at + 3]]) as usize;
            let end = (at + 4).saturating_add(len).min(all.len());
            let f = all.slice(at + 4..end);
            at = end;
            f
        } else {
            let f = all.slice(at..);
            at = all.len();
            f
        };
        if let Ok(msg) = parser.parse(&frame) {
            match &msg {
                CdcMessage::Insert { new, .. } => exercise(new, &mut out),
                CdcMessage::Update { old_key, old, new, .. } => {
                    for t in [old_key.as_ref(), old.as_ref(), Some(new)].into_iter().flatten() {
                        exercise(t, &mut out);
                    }
                }
                CdcMessage::Delete { old_key, old, .. } => {
                    for t in [old_key.as_ref(), old.as_ref()].into_iter().flatten() {
                        exercise(t, &mut out);
                    }
                }
                _ => {}
            }
        }
    }
    // The whole input as one message, too.
    let _ = PgOutputParser::new().parse(&all);
});
