//! A strict, allocation-light JSON reader for Stream Load bodies.
//!
//! The body is validated as UTF-8 once (SIMD), then read in place: strings without
//! escapes, numbers and nested values are returned as slices of the body, so a row
//! costs no allocation unless a string carries escapes. Nested objects and arrays are
//! fully validated while being skipped. Every malformed input yields a [`JsonError`]
//! with the byte offset; nothing here panics on input.

use std::borrow::Cow;

/// Nesting deeper than this is rejected (protects the stack).
const MAX_DEPTH: usize = 512;

/// Malformed JSON: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {what}")]
pub struct JsonError {
    /// Byte offset into the body.
    pub offset: usize,
    /// What was expected or found.
    pub what: &'static str,
}

/// One JSON value as the converters see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, as its validated source text.
    Number(&'a str),
    /// A string: its source token (with quotes) and its decoded text.
    Str {
        /// The token including the quotes, exactly as sent.
        raw: &'a str,
        /// The decoded value.
        text: Cow<'a, str>,
    },
    /// An object or array, as its validated source text.
    Compound(&'a str),
}

impl<'a> Scalar<'a> {
    /// The JSON text of this value (what a JSON column stores), minified.
    pub fn json_text(&self) -> Cow<'a, str> {
        match self {
            Scalar::Null => Cow::Borrowed("null"),
            Scalar::Bool(true) => Cow::Borrowed("true"),
            Scalar::Bool(false) => Cow::Borrowed("false"),
            Scalar::Number(n) => Cow::Borrowed(n),
            Scalar::Str { raw, .. } => Cow::Borrowed(raw),
            Scalar::Compound(raw) => minify(raw),
        }
    }

    /// A short name of the JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "boolean",
            Scalar::Number(_) => "number",
            Scalar::Str { .. } => "string",
            Scalar::Compound(raw) if raw.starts_with('[') => "array",
            Scalar::Compound(_) => "object",
        }
    }
}

/// Removes insignificant whitespace from validated JSON text (borrows when there is none).
pub fn minify(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let mut in_str = false;
    let mut escaped = false;
    let mut needs = false;
    for &b in bytes {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
        } else if is_ws(b) {
            needs = true;
            break;
        }
    }
    if !needs {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    in_str = false;
    escaped = false;
    for ch in raw.chars() {
        if in_str {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
            }
        } else if ch == '"' {
            in_str = true;
            out.push(ch);
        } else if !(ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A cursor over validated UTF-8 JSON text.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
    /// Offset of `text` within the whole body (for error positions).
    base: usize,
}

impl<'a> Reader<'a> {
    /// Validates `body` as UTF-8 and returns a reader at its start.
    pub fn new(body: &'a [u8]) -> Result<Self, JsonError> {
        let text = simdutf8::basic::from_utf8(body).map_err(|_| JsonError {
            offset: utf8_error_offset(body),
            what: "the body is not valid UTF-8",
        })?;
        Ok(Reader {
            text,
            pos: 0,
            base: 0,
        })
    }

    /// A reader over a slice already known to be UTF-8 (e.g. a value returned earlier).
    pub fn over(text: &'a str, base: usize) -> Self {
        Reader { text, pos: 0, base }
    }

    /// Current absolute byte offset.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn err(&self, what: &'static str) -> JsonError {
        JsonError {
            offset: self.offset(),
            what,
        }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Skips whitespace; returns the next byte without consuming it.
    #[inline]
    pub fn skip_ws(&mut self) -> Option<u8> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.pos) {
            if !is_ws(c) {
                return Some(c);
            }
            self.pos += 1;
        }
        None
    }

    #[inline]
    fn slice(&self, from: usize, to: usize) -> Result<&'a str, JsonError> {
        self.text
            .get(from..to)
            .ok_or_else(|| self.err("internal: slice off a character boundary"))
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), JsonError> {
        if self.skip_ws() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Reads one value (after whitespace). Objects and arrays come back whole.
    pub fn value(&mut self) -> Result<Scalar<'a>, JsonError> {
        match self.skip_ws() {
            None => Err(self.err("unexpected end of input, expected a value")),
            Some(b'"') => {
                let (raw, text) = self.string()?;
                Ok(Scalar::Str { raw, text })
            }
            Some(b'{') | Some(b'[') => {
                let start = self.pos;
                self.skip_compound(0)?;
                Ok(Scalar::Compound(self.slice(start, self.pos)?))
            }
            Some(b't') => self.literal("true", Scalar::Bool(true)),
            Some(b'f') => self.literal("false", Scalar::Bool(false)),
            Some(b'n') => self.literal("null", Scalar::Null),
            Some(b'-') | Some(b'0'..=b'9') => Ok(Scalar::Number(self.number()?)),
            Some(_) => Err(self.err("unexpected character, expected a value")),
        }
    }

    /// Skips one value and returns its source text.
    pub fn raw_value(&mut self) -> Result<&'a str, JsonError> {
        self.skip_ws();
        let start = self.pos;
        self.skip_value(0)?;
        self.slice(start, self.pos)
    }

    fn literal(&mut self, word: &'static str, v: Scalar<'a>) -> Result<Scalar<'a>, JsonError> {
        if self.bytes().get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<&'a str, JsonError> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return Err(self.err("invalid number"));
            }
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.err("invalid number: digits expected after the decimal point"));
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e') | Some(b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+') | Some(b'-')) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.err("invalid number: digits expected in the exponent"));
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        self.pos = i;
        self.slice(start, i)
    }

    /// Reads a string at the cursor (which must be on `"`).
    pub fn string(&mut self) -> Result<(&'a str, Cow<'a, str>), JsonError> {
        let b = self.bytes();
        let start = self.pos;
        if b.get(start) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        let body_start = start + 1;
        let rest = b.get(body_start..).unwrap_or_default();
        match memchr::memchr2(b'"', b'\\', rest) {
            None => {
                self.pos = b.len();
                Err(self.err("unterminated string"))
            }
            Some(n) if rest.get(n) == Some(&b'"') => {
                let seg = rest.get(..n).unwrap_or_default();
                if seg.iter().any(|&c| c < 0x20) {
                    self.pos = body_start;
                    return Err(self.err("control character in a string"));
                }
                self.pos = body_start + n + 1;
                Ok((
                    self.slice(start, self.pos)?,
                    Cow::Borrowed(self.slice(body_start, body_start + n)?),
                ))
            }
            Some(_) => self.string_with_escapes(start),
        }
    }

    fn string_with_escapes(&mut self, start: usize) -> Result<(&'a str, Cow<'a, str>), JsonError> {
        let b = self.bytes();
        let mut out = String::new();
        let mut i = start + 1;
        let mut seg_start = i;
        loop {
            let Some(&c) = b.get(i) else {
                self.pos = i;
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    out.push_str(self.slice(seg_start, i)?);
                    self.pos = i + 1;
                    return Ok((self.slice(start, self.pos)?, Cow::Owned(out)));
                }
                b'\\' => {
                    out.push_str(self.slice(seg_start, i)?);
                    let Some(&e) = b.get(i + 1) else {
                        self.pos = i;
                        return Err(self.err("unterminated escape"));
                    };
                    i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4(i)?;
                            i += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                                    self.pos = i;
                                    return Err(self.err("unpaired surrogate in \\u escape"));
                                }
                                let lo = self.hex4(i + 2)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    self.pos = i;
                                    return Err(self.err("invalid low surrogate in \\u escape"));
                                }
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                self.pos = i;
                                return Err(self.err("unpaired surrogate in \\u escape"));
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(ch) => out.push(ch),
                                None => {
                                    self.pos = i;
                                    return Err(self.err("invalid \\u escape"));
                                }
                            }
                        }
                        _ => {
                            self.pos = i - 1;
                            return Err(self.err("invalid escape character"));
                        }
                    }
                    seg_start = i;
                }
                c if c < 0x20 => {
                    self.pos = i;
                    return Err(self.err("control character in a string"));
                }
                _ => i += 1,
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, JsonError> {
        let Some(digits) = self.bytes().get(at..at + 4) else {
            self.pos = at;
            return Err(self.err("truncated \\u escape"));
        };
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => {
                    self.pos = at;
                    return Err(self.err("invalid hex digit in \\u escape"));
                }
            };
            v = v * 16 + u32::from(n);
        }
        Ok(v)
    }

    fn skip_value(&mut self, depth: usize) -> Result<(), JsonError> {
        match self.skip_ws() {
            Some(b'{') | Some(b'[') => self.skip_compound(depth),
            _ => self.value().map(|_| ()),
        }
    }

    fn skip_compound(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                if self.skip_ws() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if self.skip_ws() != Some(b'"') {
                        return Err(self.err("expected an object key"));
                    }
                    self.string()?;
                    self.expect(b':', "expected ':' after an object key")?;
                    self.skip_value(depth + 1)?;
                    match self.skip_ws() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err("expected ',' or '}' in an object")),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                if self.skip_ws() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    match self.skip_ws() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err("expected ',' or ']' in an array")),
                    }
                }
            }
            _ => Err(self.err("expected an object or an array")),
        }
    }

    /// Consumes `{`; call [`Reader::member`] until it returns `None`.
    pub fn begin_object(&mut self) -> Result<(), JsonError> {
        self.expect(b'{', "expected an object")
    }

    /// The next member of an object opened by [`Reader::begin_object`]; `first` is true
    /// for the first call.
    pub fn member(&mut self, first: bool) -> Result<Option<(Cow<'a, str>, Scalar<'a>)>, JsonError> {
        match self.skip_ws() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !first => {
                self.pos += 1;
                self.skip_ws();
            }
            Some(b'"') if first => {}
            _ => return Err(self.err("expected ',' or '}' in an object")),
        }
        if self.peek() != Some(b'"') {
            return Err(self.err("expected an object key"));
        }
        let (_, key) = self.string()?;
        self.expect(b':', "expected ':' after an object key")?;
        let v = self.value()?;
        Ok(Some((key, v)))
    }

    /// The text between two absolute offsets (as returned by [`Reader::offset`]).
    pub fn text_between(&self, from: usize, to: usize) -> Option<&'a str> {
        self.text
            .get(from.checked_sub(self.base)?..to.checked_sub(self.base)?)
    }

    /// True when only whitespace remains.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws().is_none()
    }
}

fn utf8_error_offset(body: &[u8]) -> usize {
    match std::str::from_utf8(body) {
        Ok(_) => 0,
        Err(e) => e.valid_up_to(),
    }
}

/// How the rows of a body are laid out (the `strip_outer_array` header).
#[derive(Debug)]
pub struct Rows<'a> {
    r: Reader<'a>,
    strip: bool,
    in_array: bool,
    first_in_array: bool,
}

/// Where the next row starts.
#[derive(Debug, PartialEq, Eq)]
pub enum RowStart {
    /// The reader is on `{`.
    Object,
    /// The reader is on some other value (the row will be filtered).
    NotObject,
    /// An array where rows were expected and `strip_outer_array` is false.
    ArrayNotStripped,
    /// A non-array document where `strip_outer_array` is true.
    NotArrayStripped,
}

impl<'a> Rows<'a> {
    /// Rows of `r`: each top-level value is a row, or (with `strip`) each element of
    /// each top-level array. Top-level values may follow each other (NDJSON style).
    pub fn new(r: Reader<'a>, strip: bool) -> Self {
        Rows {
            r,
            strip,
            in_array: false,
            first_in_array: false,
        }
    }

    /// The reader, positioned at the current row's value.
    pub fn reader(&mut self) -> &mut Reader<'a> {
        &mut self.r
    }

    /// Moves to the next row; `None` at the end of the body.
    pub fn next_row(&mut self) -> Result<Option<RowStart>, JsonError> {
        loop {
            if self.in_array {
                match self.r.skip_ws() {
                    Some(b']') => {
                        self.r.pos += 1;
                        self.in_array = false;
                        continue;
                    }
                    Some(b',') if !self.first_in_array => {
                        self.r.pos += 1;
                        self.r.skip_ws();
                    }
                    Some(_) if self.first_in_array => {}
                    None => return Err(self.r.err("unterminated array")),
                    Some(_) => return Err(self.r.err("expected ',' or ']' between rows")),
                }
                self.first_in_array = false;
                return Ok(Some(match self.r.peek() {
                    Some(b'{') => RowStart::Object,
                    Some(_) => RowStart::NotObject,
                    None => return Err(self.r.err("unterminated array")),
                }));
            }
            match self.r.skip_ws() {
                None => return Ok(None),
                Some(b'[') if self.strip => {
                    self.r.pos += 1;
                    self.in_array = true;
                    self.first_in_array = true;
                    if self.r.skip_ws() == Some(b']') {
                        self.r.pos += 1;
                        self.in_array = false;
                    }
                    continue;
                }
                Some(b'[') => return Ok(Some(RowStart::ArrayNotStripped)),
                Some(_) if self.strip => return Ok(Some(RowStart::NotArrayStripped)),
                Some(b'{') => return Ok(Some(RowStart::Object)),
                Some(_) => return Ok(Some(RowStart::NotObject)),
            }
        }
    }
}

/// One step of a simple JSONPath (`$.a.b[0]`, `$["a"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// Object member.
    Key(String),
    /// Array element.
    Index(usize),
}

/// Parses the subset of JSONPath that Stream Load users write: `$`, `.name`,
/// `['name']`/`["name"]` and `[n]`.
pub fn parse_path(path: &str) -> Result<Vec<PathStep>, String> {
    let p = path.trim();
    let mut rest = p
        .strip_prefix('$')
        .ok_or_else(|| format!("JSONPath must start with '$': {p}"))?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let (name, after) = r.split_at(end);
            if name.is_empty() {
                return Err(format!("empty member name in JSONPath: {p}"));
            }
            steps.push(PathStep::Key(name.to_owned()));
            rest = after;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unterminated '[' in JSONPath: {p}"))?;
            let (inner, after) = r.split_at(end);
            let inner = inner.trim();
            rest = after.get(1..).unwrap_or_default();
            if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            {
                steps.push(PathStep::Key(q.to_owned()));
            } else if inner == "*" {
                return Err(format!("wildcards are not supported in JSONPath: {p}"));
            } else {
                let n: usize = inner
                    .parse()
                    .map_err(|_| format!("invalid array index '{inner}' in JSONPath: {p}"))?;
                steps.push(PathStep::Index(n));
            }
        } else {
            return Err(format!("unexpected text in JSONPath: {p}"));
        }
    }
    Ok(steps)
}

/// Follows `steps` inside the validated value `raw` (at absolute offset `base`).
/// `Ok(None)` when a step does not exist.
pub fn follow_path<'a>(
    raw: &'a str,
    base: usize,
    steps: &[PathStep],
) -> Result<Option<Scalar<'a>>, JsonError> {
    let mut cur = raw;
    let mut cur_base = base;
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let mut r = Reader::over(cur, cur_base);
        let found = match step {
            PathStep::Key(k) => {
                if r.skip_ws() != Some(b'{') {
                    return Ok(None);
                }
                r.begin_object()?;
                let mut first = true;
                let mut hit = None;
                loop {
                    r.skip_ws();
                    let at = r.offset();
                    match r.member(first)? {
                        None => break,
                        Some((name, v)) => {
                            first = false;
                            if hit.is_none() && name == k.as_str() {
                                hit = Some((v, at));
                            }
                        }
                    }
                }
                hit
            }
            PathStep::Index(n) => {
                if r.skip_ws() != Some(b'[') {
                    return Ok(None);
                }
                r.pos += 1;
                let mut i = 0usize;
                let mut hit = None;
                if r.skip_ws() == Some(b']') {
                    r.pos += 1;
                } else {
                    loop {
                        r.skip_ws();
                        let at = r.offset();
                        let v = r.value()?;
                        if i == *n {
                            hit = Some((v, at));
                        }
                        i += 1;
                        match r.skip_ws() {
                            Some(b',') => r.pos += 1,
                            Some(b']') => {
                                r.pos += 1;
                                break;
                            }
                            _ => return Err(r.err("expected ',' or ']' in an array")),
                        }
                    }
                }
                hit
            }
        };
        match found {
            None => return Ok(None),
            Some((Scalar::Compound(inner), at)) => {
                cur = inner;
                cur_base = at;
            }
            Some((other, _)) => {
                // A scalar can only be the end of the path.
                return Ok(if last { Some(other) } else { None });
            }
        }
    }
    let mut r = Reader::over(cur, cur_base);
    Ok(Some(r.value()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(body: &str, strip: bool) -> Result<Vec<Vec<(String, String)>>, JsonError> {
        let r = Reader::new(body.as_bytes())?;
        let mut rows = Rows::new(r, strip);
        let mut out = Vec::new();
        while let Some(start) = rows.next_row()? {
            let rd = rows.reader();
            match start {
                RowStart::Object => {
                    rd.begin_object()?;
                    let mut first = true;
                    let mut row = Vec::new();
                    while let Some((k, v)) = rd.member(first)? {
                        first = false;
                        row.push((k.into_owned(), v.json_text().into_owned()));
                    }
                    out.push(row);
                }
                _ => {
                    rd.raw_value()?;
                    out.push(vec![("!".into(), "not an object".into())]);
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn reads_stripped_arrays_and_ndjson() {
        let r = rows(r#"[{"a":1,"b":"x"}, {"a":-2.5e3}]"#, true).expect("rows");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][1], ("b".into(), "\"x\"".into()));
        assert_eq!(r[1][0], ("a".into(), "-2.5e3".into()));
        let r = rows("{\"a\":1}\n{\"a\":2}{\"a\":3}", false).expect("ndjson");
        assert_eq!(r.len(), 3);
        let r = rows("[] [{\"a\":1}]", true).expect("two arrays");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn decodes_escapes_and_surrogates() {
        let mut r = Reader::new(br#""a\n\"b\u00e9\ud83d\ude00""#).expect("utf8");
        let (_, s) = r.string().expect("string");
        assert_eq!(s, "a\n\"bé😀");
        for bad in [
            r#""\ud83d""#,
            r#""\x""#,
            "\"a\u{1}\"",
            r#""abc"#,
            r#""\u12""#,
        ] {
            let mut r = Reader::new(bad.as_bytes()).expect("utf8");
            assert!(r.string().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "[{\"a\":1,}]",
            "[{\"a\" 1}]",
            "[{\"a\":01}]",
            "[{\"a\":1.}]",
            "[{\"a\":-}]",
            "[{\"a\":tru}]",
            "[{\"a\":[1,2}]",
            "[{\"a\":1}",
            "[{\"a\":1} {\"b\":2}]",
            "[{\"a\":{\"x\":}}]",
        ] {
            assert!(rows(bad, true).is_err(), "{bad} must be rejected");
        }
        assert!(Reader::new(b"[\"\xff\"]").is_err());
        let deep = "[".repeat(600) + &"]".repeat(600);
        let mut r = Reader::new(deep.as_bytes()).expect("utf8");
        assert!(r.value().is_err());
    }

    #[test]
    fn agrees_with_sonic_on_validity() {
        // (Out-of-range numbers such as 1e400 are valid JSON text here; the converters
        // reject them per column type.)
        let cases = [
            r#"{"a":[1,{"b":null}],"c":"\u0041"}"#,
            r#"{"a":[1,,2]}"#,
            r#"{"a":"x"}"#,
            r#"{"a":true,"b":false,"c":null,"d":-0.0}"#,
            r#"{"a":{"b":{"c":[[],{}]}}}"#,
            r#"{"a":"\q"}"#,
            r#"{"a" : 1 , "b":[ ]}"#,
        ];
        for c in cases {
            let ours = Reader::new(c.as_bytes()).and_then(|mut r| {
                let v = r.value()?;
                if r.at_end() {
                    Ok(v)
                } else {
                    Err(r.err("trailing"))
                }
            });
            let theirs: Result<sonic_rs::Value, _> = sonic_rs::from_str(c);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{c}");
        }
    }

    #[test]
    fn minifies_outside_strings_only() {
        assert_eq!(
            minify(r#"{ "a" : [1, 2], "b": "x y" }"#),
            r#"{"a":[1,2],"b":"x y"}"#
        );
        assert!(matches!(minify(r#"{"a":1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn follows_paths() {
        let raw = r#"{"a":{"b":[10,{"c":"x"}]},"k":1}"#;
        let steps = parse_path("$.a.b[1].c").expect("path");
        let v = follow_path(raw, 0, &steps).expect("follow");
        assert!(matches!(v, Some(Scalar::Str { ref text, .. }) if text == "x"));
        let steps = parse_path("$['k']").expect("path");
        assert_eq!(
            follow_path(raw, 0, &steps).expect("f"),
            Some(Scalar::Number("1"))
        );
        let steps = parse_path("$.missing.x").expect("path");
        assert_eq!(follow_path(raw, 0, &steps).expect("f"), None);
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$.a[*]").is_err());
        let whole = follow_path(raw, 0, &parse_path("$").expect("p")).expect("f");
        assert!(matches!(whole, Some(Scalar::Compound(_))));
    }
}
