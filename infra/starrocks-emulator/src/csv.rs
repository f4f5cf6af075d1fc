//! Splitting a CSV body into records and fields (`column_separator`,
//! `row_delimiter`, `enclose`, `escape`, `trim_space`).

use std::borrow::Cow;

use crate::params::CsvOptions;

/// The records of `text`: each with its source text and its fields. A trailing row
/// delimiter does not start an empty record.
pub fn records<'a>(text: &'a str, o: &CsvOptions) -> Vec<(&'a str, Vec<Cow<'a, str>>)> {
    let rd = o.row_delimiter.as_slice();
    let mut out = Vec::new();
    if o.enclose.is_none() && o.escape.is_none() {
        let mut start = 0;
        let finder = memchr::memmem::Finder::new(rd);
        let bytes = text.as_bytes();
        while start < bytes.len() {
            let end = finder
                .find(bytes.get(start..).unwrap_or_default())
                .map_or(bytes.len(), |i| start + i);
            let rec = text.get(start..end).unwrap_or_default();
            out.push((rec, split_plain(rec, o)));
            start = end + rd.len();
        }
        return out;
    }
    // Slow path: a small state machine over bytes (separators are byte strings;
    // enclose/escape are single bytes, so multi-byte characters are never split).
    let bytes = text.as_bytes();
    let sep = o.column_separator.as_slice();
    let mut i = 0;
    while i < bytes.len() {
        let rec_start = i;
        let mut fields: Vec<Cow<'a, str>> = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut in_quotes = false;
        let mut was_quoted = false;
        loop {
            let Some(&b) = bytes.get(i) else {
                fields.push(finish(&mut cur, was_quoted, o));
                break;
            };
            if Some(b) == o.escape {
                if let Some(&n) = bytes.get(i + 1) {
                    cur.push(n);
                    i += 2;
                    continue;
                }
            }
            if in_quotes {
                if Some(b) == o.enclose {
                    if bytes.get(i + 1) == Some(&b) {
                        cur.push(b);
                        i += 2;
                    } else {
                        in_quotes = false;
                        i += 1;
                    }
                } else {
                    cur.push(b);
                    i += 1;
                }
                continue;
            }
            if Some(b) == o.enclose && cur.iter().all(|c| *c == b' ') {
                cur.clear();
                in_quotes = true;
                was_quoted = true;
                i += 1;
                continue;
            }
            if bytes.get(i..i + rd.len()) == Some(rd) {
                fields.push(finish(&mut cur, was_quoted, o));
                i += rd.len();
                break;
            }
            if bytes.get(i..i + sep.len()) == Some(sep) {
                fields.push(finish(&mut cur, was_quoted, o));
                was_quoted = false;
                i += sep.len();
                continue;
            }
            cur.push(b);
            i += 1;
        }
        let rec_end = i.min(bytes.len());
        let raw = text.get(rec_start..rec_end).unwrap_or_default();
        out.push((
            raw.strip_suffix(std::str::from_utf8(rd).unwrap_or("\n"))
                .unwrap_or(raw),
            fields,
        ));
    }
    out
}

fn finish<'a>(cur: &mut Vec<u8>, quoted: bool, o: &CsvOptions) -> Cow<'a, str> {
    let s = String::from_utf8_lossy(&std::mem::take(cur)).into_owned();
    if o.trim_space && !quoted {
        Cow::Owned(s.trim_matches(' ').to_owned())
    } else {
        Cow::Owned(s)
    }
}

fn split_plain<'a>(rec: &'a str, o: &CsvOptions) -> Vec<Cow<'a, str>> {
    let sep = o.column_separator.as_slice();
    let finder = memchr::memmem::Finder::new(sep);
    let bytes = rec.as_bytes();
    let mut fields = Vec::new();
    let mut start = 0;
    loop {
        let end = finder
            .find(bytes.get(start..).unwrap_or_default())
            .map_or(bytes.len(), |i| start + i);
        let f = rec.get(start..end).unwrap_or_default();
        fields.push(Cow::Borrowed(if o.trim_space {
            f.trim_matches(' ')
        } else {
            f
        }));
        if end >= bytes.len() {
            break;
        }
        start = end + sep.len();
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(enclose: Option<u8>, escape: Option<u8>, trim: bool) -> CsvOptions {
        CsvOptions {
            column_separator: b",".to_vec(),
            row_delimiter: b"\n".to_vec(),
            skip_header: 0,
            trim_space: trim,
            enclose,
            escape,
        }
    }

    #[test]
    fn plain_and_enclosed() {
        let r = records("a,b\nc,d\n", &opts(None, None, false));
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].1, vec!["c", "d"]);
        let r = records("\"x,\"\"y\"\" z\",2\n", &opts(Some(b'"'), None, false));
        assert_eq!(r[0].1, vec!["x,\"y\" z", "2"]);
        let r = records("a\\,b,c\n", &opts(None, Some(b'\\'), false));
        assert_eq!(r[0].1, vec!["a,b", "c"]);
        let r = records(" a , b ", &opts(None, None, true));
        assert_eq!(r[0].1, vec!["a", "b"]);
    }
}
