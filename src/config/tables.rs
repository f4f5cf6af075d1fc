//! Table lists (`TABLES`) and the source → StarRocks table map (`SINK_TABLE_MAP`).
//!
//! Names follow PostgreSQL's rules: an unquoted identifier is folded to lower case
//! (`Orders` means `orders`, exactly as in SQL) and may contain letters, digits, `_`
//! and `$`; a double-quoted identifier keeps its case and may contain anything,
//! including `.`, `,` and `"` (written `""`). `schema.table` names a table in a
//! schema, a bare `table` means `public.table`. Names longer than 63 bytes are
//! rejected because PostgreSQL would silently truncate them.

use std::fmt;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_PG_IDENTIFIER_BYTES: usize = 63;

/// A source table: schema and name, both exactly as stored in the PostgreSQL catalog.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// Schema (`public` when the configuration named no schema).
    pub schema: String,
    /// Table name.
    pub name: String,
}

impl TableName {
    /// A table from catalog names (no folding, no quoting).
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableName {
    /// `schema.name`, each part quoted only when SQL would need it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }
}

/// `ident` as SQL text: bare when it is a plain lower-case identifier, else quoted.
pub fn display_ident(ident: &str) -> String {
    let plain = !ident.is_empty()
        && ident
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        ident.to_owned()
    } else {
        postgres_protocol::escape::escape_identifier(ident)
    }
}

/// `value` when no problem was found, else every problem.
fn gathered<T>(value: T, problems: Vec<String>) -> Result<T, Vec<String>> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(problems)
    }
}

/// Splits a comma-separated list of table references.
///
/// Every problem found is returned (not only the first), each naming the entry.
pub fn parse_table_list(text: &str) -> Result<Vec<TableName>, Vec<String>> {
    let mut tables = Vec::new();
    let mut problems = Vec::new();
    let mut p = Parser::new(text);
    let mut position = 0usize;
    loop {
        position += 1;
        p.skip_spaces();
        if p.at_end() {
            if position == 1 {
                problems.push("the list is empty".to_owned());
            } else {
                problems.push(format!("entry {position} is empty (a trailing comma?)"));
            }
            break;
        }
        match p.table_ref() {
            Ok(t) => {
                if tables.contains(&t) {
                    problems.push(format!("{t} is listed twice"));
                } else {
                    tables.push(t);
                }
            }
            Err(e) => {
                problems.push(format!("entry {position}: {e}"));
                // Resynchronise at the next comma outside quotes.
                p.skip_to_comma();
            }
        }
        p.skip_spaces();
        if p.at_end() {
            break;
        }
        if !p.eat(',') {
            problems.push(format!(
                "entry {position}: unexpected text {:?} (separate tables with commas)",
                p.rest_preview()
            ));
            p.skip_to_comma();
            if !p.eat(',') {
                break;
            }
        }
    }
    gathered(tables, problems)
}

/// Parses exactly one table reference (used for list elements of the jobs file and for
/// the left side of a map entry).
pub fn parse_one_table(text: &str) -> Result<TableName, String> {
    let mut p = Parser::new(text);
    p.skip_spaces();
    let t = p.table_ref()?;
    p.skip_spaces();
    if !p.at_end() {
        return Err(format!(
            "unexpected text {:?} after {t} (one table per entry)",
            p.rest_preview()
        ));
    }
    Ok(t)
}

/// Splits `SINK_TABLE_MAP` text: `source=target` pairs separated by commas. Quoted
/// source names may contain `=` and `,`.
pub fn parse_map_pairs(text: &str) -> Result<Vec<(TableName, String)>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut p = Parser::new(text);
    let mut position = 0usize;
    loop {
        position += 1;
        p.skip_spaces();
        if p.at_end() {
            problems.push(if position == 1 {
                "the map is empty".to_owned()
            } else {
                format!("entry {position} is empty (a trailing comma?)")
            });
            break;
        }
        let source = match p.table_ref() {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("entry {position}: {e}"));
                p.skip_to_comma();
                if !p.eat(',') {
                    break;
                }
                continue;
            }
        };
        p.skip_spaces();
        if !p.eat('=') {
            problems.push(format!(
                "entry {position}: expected `=` after {source} (write source=target)"
            ));
            p.skip_to_comma();
            if !p.eat(',') {
                break;
            }
            continue;
        }
        let target = p.take_until_comma().trim().to_owned();
        out.push((source, target));
        if !p.eat(',') {
            break;
        }
    }
    gathered(out, problems)
}

/// Checks a StarRocks table name: letters, digits and `_`, not starting with a digit,
/// 1 to 1024 characters (StarRocks' naming rules).
pub fn check_starrocks_table(name: &str) -> Result<(), String> {
    check_starrocks_name(name, 1024)
}

/// Checks a StarRocks object name of at most `max` characters.
pub fn check_starrocks_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("starts with a digit".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "contains {c:?}; StarRocks names may only contain letters, digits and `_`"
        ));
    }
    Ok(())
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn rest_preview(&self) -> String {
        self.rest().chars().take(20).collect()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Skips to the next comma that is not inside double quotes (not consuming it).
    fn skip_to_comma(&mut self) {
        let mut quoted = false;
        while let Some(c) = self.peek() {
            if c == '"' {
                quoted = !quoted;
            } else if c == ',' && !quoted {
                return;
            }
            self.bump();
        }
    }

    fn take_until_comma(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == ',' {
                break;
            }
            self.bump();
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    /// `ident` or `ident.ident`.
    fn table_ref(&mut self) -> Result<TableName, String> {
        let first = self.ident()?;
        if self.eat('.') {
            let second = self.ident()?;
            if self.peek() == Some('.') {
                return Err(format!(
                    "{}.{}.… has more than two parts (write schema.table; the database comes \
                     from SOURCE_URL)",
                    display_ident(&first),
                    display_ident(&second)
                ));
            }
            Ok(TableName::new(first, second))
        } else {
            Ok(TableName::new("public", first))
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        let ident = if self.eat('"') {
            let mut s = String::new();
            loop {
                match self.bump() {
                    None => return Err(format!("unterminated quoted name \"{s}")),
                    Some('"') => {
                        if self.eat('"') {
                            s.push('"');
                        } else {
                            break;
                        }
                    }
                    Some(c) => s.push(c),
                }
            }
            if s.is_empty() {
                return Err("empty quoted name \"\"".to_owned());
            }
            s
        } else {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
            {
                self.bump();
            }
            let raw = self.text.get(start..self.pos).unwrap_or("");
            if raw.is_empty() {
                return Err(match self.peek() {
                    Some(c) => format!(
                        "unexpected {c:?} where a name was expected (double-quote names with \
                         special characters)"
                    ),
                    None => "a name is missing".to_owned(),
                });
            }
            if raw.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
                return Err(format!(
                    "{raw} is not a valid unquoted name (it starts with {:?}); double-quote it",
                    raw.chars().next().unwrap_or('?')
                ));
            }
            // PostgreSQL folds unquoted identifiers to lower case.
            raw.to_lowercase()
        };
        if ident.len() > MAX_PG_IDENTIFIER_BYTES {
            return Err(format!(
                "{} is longer than {MAX_PG_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)",
                display_ident(&ident)
            ));
        }
        if ident.contains('\0') {
            return Err("a name contains a NUL character".to_owned());
        }
        Ok(ident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, name: &str) -> TableName {
        TableName::new(schema, name)
    }

    #[test]
    fn bare_and_qualified_names() {
        assert_eq!(
            parse_table_list("orders, sales.items").expect("ok"),
            vec![t("public", "orders"), t("sales", "items")]
        );
    }

    #[test]
    fn unquoted_names_fold_to_lower_case() {
        assert_eq!(
            parse_table_list("Sales.Orders").expect("ok"),
            vec![t("sales", "orders")]
        );
    }

    #[test]
    fn quoted_names_keep_dots_commas_and_quotes() {
        let got =
            parse_table_list(r#""My.Schema"."a,b", "x""y", public."Mixed Case""#).expect("ok");
        assert_eq!(
            got,
            vec![
                t("My.Schema", "a,b"),
                t("public", "x\"y"),
                t("public", "Mixed Case")
            ]
        );
    }

    #[test]
    fn display_quotes_only_when_needed() {
        assert_eq!(t("public", "orders").to_string(), "public.orders");
        assert_eq!(
            t("My.Schema", "a\"b").to_string(),
            "\"My.Schema\".\"a\"\"b\""
        );
    }

    #[test]
    fn duplicates_are_rejected_after_folding() {
        let err = parse_table_list("orders, public.ORDERS").expect_err("dup");
        assert_eq!(err, vec!["public.orders is listed twice".to_owned()]);
    }

    #[test]
    fn empty_entries_are_rejected() {
        assert_eq!(
            parse_table_list("").expect_err("empty"),
            vec!["the list is empty".to_owned()]
        );
        let err = parse_table_list("a,,b").expect_err("empty entry");
        assert!(err.iter().any(|e| e.contains("entry 2")), "{err:?}");
        let err = parse_table_list("a,").expect_err("trailing");
        assert!(err.iter().any(|e| e.contains("trailing comma")), "{err:?}");
    }

    #[test]
    fn every_bad_entry_is_reported() {
        let err = parse_table_list("a.b.c, \"open, 1abc").expect_err("bad");
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].contains("more than two parts"), "{err:?}");
        assert!(err[1].contains("unterminated"), "{err:?}");
    }

    #[test]
    fn unquoted_leading_digit_is_rejected() {
        let err = parse_table_list("1abc").expect_err("digit");
        assert!(err[0].contains("double-quote"), "{err:?}");
    }

    #[test]
    fn names_longer_than_63_bytes_are_rejected() {
        let long = "a".repeat(64);
        let err = parse_table_list(&long).expect_err("long");
        assert!(err[0].contains("63 bytes"), "{err:?}");
        assert!(parse_table_list(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn missing_comma_between_entries_is_reported() {
        let err = parse_table_list("a b").expect_err("no comma");
        assert!(err[0].contains("separate tables with commas"), "{err:?}");
    }

    #[test]
    fn one_table_rejects_lists() {
        assert_eq!(parse_one_table(" s.t ").expect("ok"), t("s", "t"));
        assert!(parse_one_table("a, b").is_err());
    }

    #[test]
    fn map_pairs() {
        let got = parse_map_pairs(r#"orders=orders_rt, "we=ird,name"=w"#).expect("ok");
        assert_eq!(
            got,
            vec![
                (t("public", "orders"), "orders_rt".to_owned()),
                (t("public", "we=ird,name"), "w".to_owned())
            ]
        );
        let err = parse_map_pairs("orders").expect_err("no =");
        assert!(err[0].contains("expected `=`"), "{err:?}");
    }

    #[test]
    fn starrocks_names() {
        assert!(check_starrocks_table("orders_2024").is_ok());
        assert!(check_starrocks_table("_x").is_ok());
        assert!(check_starrocks_table("2x").is_err());
        assert!(check_starrocks_table("a-b").is_err());
        assert!(check_starrocks_table("").is_err());
        assert!(check_starrocks_name(&"a".repeat(257), 256).is_err());
    }
}
