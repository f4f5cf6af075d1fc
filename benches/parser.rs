//! Parser throughput over a captured insert-heavy pgoutput stream.
//!
//! Reference measured in the same run: a `memchr` scan of the same bytes (the
//! cheapest pass that touches every byte). Run with `cargo bench --bench parser`;
//! besides criterion's report it prints MB/s of XLogData payload, messages/s and
//! the parse/scan ratio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use dbmazz::source::message::{CdcMessage, ColumnKind};
use dbmazz::source::parser::PgOutputParser;
use dbmazz::source::values::{ColumnCodec, JsonTarget, PgType, TypeRegistry};

/// Frames of a capture file (4-byte big-endian length + payload each), as slices
/// of one buffer like the socket read buffer they come from.
fn load(name: &str) -> Vec<Bytes> {
    let path = format!("{}/benches/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let all = Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 4 <= all.len() {
        let len = u32::from_be_bytes([all[at], all[at + 1], all[at + 2], all[at + 3]]) as usize;
        frames.push(all.slice(at + 4..at + 4 + len));
        at += 4 + len;
    }
    frames
}

fn parse_all(frames: &[Bytes]) -> usize {
    let mut p = PgOutputParser::new();
    let mut n = 0;
    for f in frames {
        match p.parse(f) {
            Ok(m) => {
                black_box(&m);
                n += 1;
            }
            Err(e) => panic!("captured frame failed to parse: {e}"),
        }
    }
    n
}

fn scan_all(frames: &[Bytes]) -> usize {
    frames
        .iter()
        .map(|f| memchr::memchr_iter(0, black_box(f)).count())
        .sum()
}

/// Encodes every row of the capture as a JSON object (what the sink does).
fn encode_all(frames: &[Bytes], out: &mut Vec<u8>) -> usize {
    let mut p = PgOutputParser::new();
    let reg = TypeRegistry::new();
    let mut codecs: Vec<ColumnCodec> = Vec::new();
    let mut rows = 0;
    for f in frames {
        match p.parse(f).expect("parse") {
            CdcMessage::Relation(r) => {
                codecs = r
                    .columns
                    .iter()
                    .map(|c| {
                        ColumnCodec::new(
                            &r.name,
                            &c.name,
                            PgType::resolve(c.type_oid, c.type_modifier, &reg),
                        )
                    })
                    .collect();
            }
            CdcMessage::Insert { new, .. } => {
                out.clear();
                out.push(b'{');
                for (i, codec) in codecs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.push(b'c');
                    out.push(b'"');
                    out.push(b':');
                    match new.kind(i) {
                        Some(ColumnKind::Text) => {
                            let t = new.text(i).expect("text");
                            codec.encode(t, JsonTarget::Json, out).expect("encode");
                        }
                        _ => out.extend_from_slice(b"null"),
                    }
                }
                out.push(b'}');
                black_box(&out);
                rows += 1;
            }
            _ => {}
        }
    }
    rows
}

fn best_of<F: FnMut() -> usize>(mut f: F) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed());
    }
    best
}

fn main() {
    let frames = load("insert_heavy.pgout");
    let bytes: usize = frames.iter().map(Bytes::len).sum();
    let msgs = frames.len();

    // Profiling mode: `PARSER_BENCH_PASSES=N` parses the corpus N times and exits,
    // for callgrind/perf (instruction counts are stable on a noisy machine).
    if let Some(passes) = std::env::var("PARSER_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let mut n = 0;
        for _ in 0..passes {
            n += parse_all(&frames);
        }
        println!("parsed {n} messages");
        return;
    }

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    {
        let mut g = c.benchmark_group("pgoutput_insert_heavy");
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function("parse", |b| b.iter(|| parse_all(&frames)));
        g.bench_function("memchr_scan_reference", |b| b.iter(|| scan_all(&frames)));
        let mut out = Vec::with_capacity(4096);
        g.bench_function("parse_and_encode_json", |b| {
            b.iter(|| encode_all(&frames, &mut out))
        });
        g.finish();
    }
    c.final_summary();

    // Same-run summary with the ratio (best of 15 passes each).
    let parse = best_of(|| parse_all(&frames));
    let scan = best_of(|| scan_all(&frames));
    let mut out = Vec::with_capacity(4096);
    let encode = best_of(|| encode_all(&frames, &mut out));
    let mbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    println!(
        "\ncorpus: {msgs} messages, {:.2} MB of XLogData payload ({:.0} bytes/message)",
        bytes as f64 / 1e6,
        bytes as f64 / msgs as f64
    );
    println!(
        "parse:                 {:>8.0} MB/s  {:>6.2} M messages/s",
        mbps(parse),
        msgs as f64 / parse.as_secs_f64() / 1e6
    );
    println!("memchr scan reference: {:>8.0} MB/s", mbps(scan));
    println!(
        "parse + JSON encode:   {:>8.0} MB/s  {:>6.2} M messages/s",
        mbps(encode),
        msgs as f64 / encode.as_secs_f64() / 1e6
    );
    println!(
        "ratio parse / memchr scan: {:.2}",
        scan.as_secs_f64() / parse.as_secs_f64()
    );
}
