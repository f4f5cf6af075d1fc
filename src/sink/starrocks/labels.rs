//! Deterministic Stream Load labels (design rule 5).
//!
//! `<prefix>_<job>_<table>_<firstCommit>_<lastCommit>_<segment>_<part>`: the same
//! batch re-cut after a restart produces the same labels for the same rows, so
//! StarRocks answers "Label Already Exists" instead of applying them twice. Labels
//! only use `[A-Za-z0-9_-]` and stay within 128 characters; longer ones keep a
//! readable prefix and end in a hash of the full text.

use crate::lsn::Lsn;

/// Longest label dbmazz produces.
pub const MAX_LABEL_LEN: usize = 128;

/// Replaces every character outside `[A-Za-z0-9_-]` with `_`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn lsn_part(l: Lsn) -> String {
    format!("{:X}-{:X}", l.0 >> 32, l.0 & 0xFFFF_FFFF)
}

/// 64-bit FNV-1a: stable across versions and platforms (unlike `DefaultHasher`).
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Parts of a label.
#[derive(Clone, Debug)]
pub struct LabelParts<'a> {
    /// Configured prefix.
    pub prefix: &'a str,
    /// Job id.
    pub job: &'a str,
    /// Sink table.
    pub table: &'a str,
    /// First commit LSN of the batch.
    pub first: Lsn,
    /// Last commit LSN of the batch.
    pub last: Lsn,
    /// Segment index within the table.
    pub segment: usize,
    /// Load index within the segment (one per row shape).
    pub part: usize,
    /// Set for loads that must not be de-duplicated across runs (after a TRUNCATE
    /// in the same batch): a value unique to this attempt of the batch.
    pub nonce: Option<u64>,
}

/// Builds the label.
pub fn make(p: &LabelParts<'_>) -> String {
    let mut full = format!(
        "{}_{}_{}_{}_{}_{}_{}",
        sanitize(p.prefix),
        sanitize(p.job),
        sanitize(p.table),
        lsn_part(p.first),
        lsn_part(p.last),
        p.segment,
        p.part
    );
    if let Some(n) = p.nonce {
        full.push_str(&format!("_r{n:x}"));
    }
    if full.len() <= MAX_LABEL_LEN {
        return full;
    }
    let hash = format!("_h{:016x}", fnv1a(&full));
    let keep = MAX_LABEL_LEN - hash.len();
    // `full` is ASCII after sanitising, so byte slicing is on char boundaries.
    format!("{}{}", &full[..keep], hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(job: &'a str, table: &'a str) -> LabelParts<'a> {
        LabelParts {
            prefix: "dbmazz",
            job,
            table,
            first: Lsn(0x16_B374_D848),
            last: Lsn(0x17_0000_0001),
            segment: 0,
            part: 1,
            nonce: None,
        }
    }

    #[test]
    fn labels_are_deterministic_and_readable() {
        let a = make(&parts("orders-job", "orders"));
        assert_eq!(a, "dbmazz_orders-job_orders_16-B374D848_17-1_0_1");
        assert_eq!(a, make(&parts("orders-job", "orders")));
    }

    #[test]
    fn labels_only_use_safe_characters() {
        let l = make(&parts("job/ä \"x\"", "Tab.le"));
        assert!(
            l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{l}"
        );
    }

    #[test]
    fn long_labels_are_cut_with_a_hash() {
        let long = "t".repeat(200);
        let a = make(&parts("job", &long));
        let mut other = long.clone();
        other.push('x');
        let b = make(&parts("job", &other));
        assert_eq!(a.len(), MAX_LABEL_LEN);
        assert_ne!(a, b, "different inputs keep different labels");
    }

    #[test]
    fn nonce_changes_the_label() {
        let mut p = parts("j", "t");
        let a = make(&p);
        p.nonce = Some(7);
        assert_ne!(a, make(&p));
    }
}
