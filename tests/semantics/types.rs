//! Every type: a table with one column per PostgreSQL type, whose sink columns
//! dbmazz creates itself (the sink table starts with only its key), receives NULLs
//! and extreme values — int8 min/max, numeric(38,10) and wider, NaN and infinities,
//! dates before 1970 and after 2100, timestamptz in several zones, empty arrays and
//! arrays with NULLs, nested JSON, multi-byte and 4-byte UTF-8, quotes, backslashes,
//! newlines and control characters — and each arrives as the value the column holds.
//!
//! The table "Columns dbmazz creates" of docs/type-mapping.md is checked against
//! the code and against the columns the sink really gets.

use crate::scenario::{run_all, Scenario, NULL};
use dbmazz::pipeline::schema_cache::ColumnSchema;
use dbmazz::sink::starrocks::catalog::{starrocks_type, Dialect};
use dbmazz::source::values::{PgType, TypeRegistry};
use mysql_async::prelude::Queryable;

/// `(PostgreSQL type, StarRocks type)` rows of the doc's "Columns dbmazz creates".
fn doc_mapping() -> Vec<(String, String)> {
    let doc = include_str!("../../docs/type-mapping.md");
    let section = doc
        .split("## Columns dbmazz creates")
        .nth(1)
        .expect("section 'Columns dbmazz creates' in docs/type-mapping.md");
    let rows: Vec<(String, String)> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let unquote = |c: &str| c.trim_matches('`').to_owned();
            (unquote(cells[1]), unquote(cells[2]))
        })
        .collect();
    assert!(rows.len() > 20, "the doc table has its rows: {rows:?}");
    rows
}

fn col_name(i: usize) -> String {
    format!("c{i}")
}

/// Columns and the values each must arrive as: `(column, pg type, [(literal,
/// expected sink text)])`. The expected text is MariaDB's rendering of the value
/// the mapped column holds (DATETIME with 6 decimals, BOOLEAN as 1/0, JSON
/// minified).
/// `(column, PostgreSQL type, [(SQL literal, expected sink text)])`.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

fn cases() -> Vec<Case> {
    vec![
        ("b", "boolean", vec![("true", "1"), ("false", "0")]),
        ("i2", "smallint", vec![("-32768", "-32768"), ("32767", "32767")]),
        (
            "i4",
            "integer",
            vec![("-2147483648", "-2147483648"), ("2147483647", "2147483647")],
        ),
        (
            "i8",
            "bigint",
            vec![
                ("-9223372036854775808", "-9223372036854775808"),
                ("9223372036854775807", "9223372036854775807"),
                ("0", "0"),
            ],
        ),
        ("f4", "real", vec![("1.5", "1.5"), ("-0.25", "-0.25")]),
        (
            "f8",
            "double precision",
            vec![
                ("0.1", "0.1"),
                ("-1.7976931348623157e308", "-1.7976931348623157e308"),
                ("5e-324", "5e-324"),
            ],
        ),
        (
            "n38",
            "numeric(38,10)",
            vec![
                (
                    "1234567890123456789012345678.0123456789",
                    "1234567890123456789012345678.0123456789",
                ),
                (
                    "-9999999999999999999999999999.9999999999",
                    "-9999999999999999999999999999.9999999999",
                ),
                ("-0.0000000001", "-0.0000000001"),
                ("0", "0.0000000000"),
            ],
        ),
        (
            "n50",
            "numeric(50,5)",
            vec![(
                "123456789012345678901234567890123456789012345.12345",
                "123456789012345678901234567890123456789012345.12345",
            )],
        ),
        (
            "nu",
            "numeric",
            vec![
                (
                    "3.14159265358979323846264338327950288419716939937510",
                    "3.14159265358979323846264338327950288419716939937510",
                ),
                ("'NaN'", "NaN"),
                ("'Infinity'", "Infinity"),
                ("'-Infinity'", "-Infinity"),
            ],
        ),
        (
            "t",
            "text",
            vec![
                ("''", ""),
                (
                    "E'quote '' dq \" backslash \\\\ newline \\n tab \\t cr \\r ctrl \\x01 \\x1f end'",
                    "quote ' dq \" backslash \\ newline \n tab \t cr \r ctrl \u{1} \u{1f} end",
                ),
                ("'ünïcödé — Ω ≈ ç'", "ünïcödé — Ω ≈ ç"),
                ("'4-byte: 😀 𝄞 🀄'", "4-byte: 😀 𝄞 🀄"),
                ("'{\"looks\": \"like json\"}'", "{\"looks\": \"like json\"}"),
            ],
        ),
        (
            "vc",
            "varchar(10)",
            vec![("'ääääääääää'", "ääääääääää"), ("'😀😀😀😀😀😀😀😀😀😀'", "😀😀😀😀😀😀😀😀😀😀")],
        ),
        ("ch", "char(3)", vec![("'ab'", "ab ")]),
        (
            "by",
            "bytea",
            vec![("'\\xdeadBEEF'", "deadbeef"), ("'\\x'", ""), ("'\\x00ff'", "00ff")],
        ),
        (
            "d",
            "date",
            vec![
                ("'0001-01-01'", "0001-01-01"),
                ("'1969-12-31'", "1969-12-31"),
                ("'2100-02-28'", "2100-02-28"),
                ("'9999-12-31'", "9999-12-31"),
            ],
        ),
        (
            "ts",
            "timestamp",
            vec![
                ("'1900-01-01 00:00:00'", "1900-01-01 00:00:00.000000"),
                ("'1970-01-01 00:00:00.000001'", "1970-01-01 00:00:00.000001"),
                ("'2262-04-11 23:47:16.854775'", "2262-04-11 23:47:16.854775"),
            ],
        ),
        (
            "tz",
            "timestamptz",
            vec![
                ("'2024-06-01 12:00:00+05:30'", "2024-06-01 06:30:00.000000"),
                ("'2024-01-01 00:00:00-03:30'", "2024-01-01 03:30:00.000000"),
                (
                    "'1950-07-01 08:00:00 America/New_York'",
                    "1950-07-01 12:00:00.000000",
                ),
                ("'2150-12-31 23:59:59.5 Asia/Tokyo'", "2150-12-31 14:59:59.500000"),
                ("'1901-01-01 00:00:00+00'", "1901-01-01 00:00:00.000000"),
            ],
        ),
        ("tm", "time", vec![("'23:59:59.999999'", "23:59:59.999999")]),
        ("ttz", "timetz", vec![("'12:00:00+05:30'", "12:00:00+05:30")]),
        (
            "iv",
            "interval",
            vec![("'1 year 2 months 3 days 04:05:06.5'", "1 year 2 mons 3 days 04:05:06.5")],
        ),
        (
            "u",
            "uuid",
            vec![(
                "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            )],
        ),
        (
            "j",
            "json",
            vec![(
                "'{\"a\": [1, 2, {\"b\": null}], \"c\": \"x\\\"y\"}'",
                "{\"a\":[1,2,{\"b\":null}],\"c\":\"x\\\"y\"}",
            )],
        ),
        (
            "jb",
            "jsonb",
            vec![
                (
                    "'{\"deep\": {\"er\": {\"est\": [true, false, null, 1.5e10, \"ü😀\"]}}}'",
                    "{\"deep\":{\"er\":{\"est\":[true,false,null,15000000000,\"ü😀\"]}}}",
                ),
                ("'[]'", "[]"),
                ("'\"just a string\"'", "\"just a string\""),
            ],
        ),
        ("ip", "inet", vec![("'192.168.0.1/24'", "192.168.0.1/24")]),
        ("mo", "money", vec![("12345.678", "$12,345.68")]),
        (
            "ai",
            "integer[]",
            vec![
                ("'{}'", "[]"),
                ("'{1,NULL,3}'", "[1,null,3]"),
                ("'{{1,2},{3,4}}'", "[[1,2],[3,4]]"),
            ],
        ),
        (
            "at",
            "text[]",
            vec![(
                "ARRAY['a,b', 'c\"d', NULL, '', 'ü']",
                "[\"a,b\",\"c\\\"d\",null,\"\",\"ü\"]",
            )],
        ),
        ("e", "mood", vec![("'happy'", "happy")]),
        // The text target: sink columns created as VARCHAR by the user (see
        // TEXT_TARGET) keep what no typed column can hold, as PostgreSQL printed it.
        (
            "fx",
            "double precision",
            vec![
                ("'NaN'", "NaN"),
                ("'Infinity'", "Infinity"),
                ("'-Infinity'", "-Infinity"),
                ("2.5", "2.5"),
            ],
        ),
        (
            "tx",
            "timestamptz",
            vec![
                ("'infinity'", "infinity"),
                ("'-infinity'", "-infinity"),
                ("'2024-06-01 12:00:00+05:30'", "2024-06-01 06:30:00+00"),
            ],
        ),
        (
            "dx",
            "date",
            vec![("'0044-03-15 BC'", "0044-03-15 BC"), ("'12345-01-01'", "12345-01-01")],
        ),
    ]
}

/// Columns the sink table is created with (the rest dbmazz adds).
const TEXT_TARGET: &str = "fx VARCHAR(64), tx VARCHAR(64), dx VARCHAR(64)";

async fn every_type_arrives_as_the_column_holds_it(s: Scenario<'_>) {
    let cases = cases();
    let cols: Vec<String> = cases.iter().map(|(c, ty, _)| format!("{c} {ty}")).collect();
    s.sql(&format!(
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE TABLE v (id int PRIMARY KEY, {});",
        cols.join(", ")
    ))
    .await;
    // Only the key and the text-target columns: dbmazz adds every other column with
    // its mapped type.
    s.sink_sql(&format!(
        "CREATE TABLE v (id INT PRIMARY KEY, {TEXT_TARGET})"
    ))
    .await;
    let run = s.start().await;
    // Row 0: every column NULL. Then one row per value, inserted, and for half of
    // them updated to the value (so both inserts and updates carry every type).
    let mut sql = String::from("INSERT INTO v (id) VALUES (0);");
    let mut id = 0;
    for (c, _, vals) in &cases {
        for (lit, _) in vals {
            id += 1;
            if id % 2 == 0 {
                sql.push_str(&format!(
                    "INSERT INTO v (id) VALUES ({id}); UPDATE v SET {c} = {lit} WHERE id = {id};"
                ));
            } else {
                sql.push_str(&format!("INSERT INTO v (id, {c}) VALUES ({id}, {lit});"));
            }
        }
    }
    s.txn(&sql).await;
    s.caught_up(&run).await;

    let mut conn = s.sink.get_conn().await.expect("sink");
    let mut id = 0;
    let mut wrong = Vec::new();
    for (c, ty, vals) in &cases {
        let nulls: Option<Option<String>> = conn
            .query_first(format!("SELECT CAST(`{c}` AS CHAR) FROM v WHERE id = 0"))
            .await
            .expect("null row");
        if nulls != Some(None) {
            wrong.push(format!("{c} ({ty}): NULL arrived as {nulls:?}"));
        }
        for (lit, want) in vals {
            id += 1;
            let got: Option<Option<String>> = conn
                .query_first(format!("SELECT CAST(`{c}` AS CHAR) FROM v WHERE id = {id}"))
                .await
                .expect("value");
            let got = got.flatten();
            if got.as_deref() != Some(*want) {
                wrong.push(format!(
                    "{c} ({ty}) = {lit}: expected {want:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "[{}] values differ:\n{}",
        s.name,
        wrong.join("\n")
    );
    let _ = NULL;
    s.finish(run).await;
}

/// The doc's mapping table matches `starrocks_type` for real PostgreSQL columns,
/// and the sink columns dbmazz adds have exactly those types.
async fn documented_mapping_is_the_mapping(s: Scenario<'_>) {
    let mapping = doc_mapping();
    let cols: Vec<String> = mapping
        .iter()
        .enumerate()
        .map(|(i, (pg, _))| format!("{} {pg}", col_name(i)))
        .collect();
    s.sql(&format!(
        "CREATE TABLE m (id int PRIMARY KEY, {})",
        cols.join(", ")
    ))
    .await;
    let attrs = s
        .pg()
        .query(
            "SELECT attname::text, atttypid, atttypmod FROM pg_attribute \
             WHERE attrelid = 'm'::regclass AND attnum > 1 ORDER BY attnum",
            &[],
        )
        .await
        .expect("attributes");
    let mut wrong = Vec::new();
    for (i, ((pg, doc_type), a)) in mapping.iter().zip(&attrs).enumerate() {
        assert_eq!(a.get::<_, String>(0), col_name(i));
        let c = ColumnSchema {
            name: col_name(i),
            type_oid: a.get(1),
            type_modifier: a.get(2),
            pg_type: PgType::resolve(a.get(1), a.get(2), &TypeRegistry::new()),
            identity: false,
        };
        let code = starrocks_type(&c);
        if &code != doc_type {
            wrong.push(format!("{pg}: doc says {doc_type}, code creates {code}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/type-mapping.md is out of date:\n{}",
        wrong.join("\n")
    );

    // The sink gets those columns (in the emulator's MariaDB dialect).
    s.sink_sql("CREATE TABLE m (id INT PRIMARY KEY)").await;
    let run = s.start().await;
    let mut conn = s.sink.get_conn().await.expect("sink");
    for (i, (pg, doc_type)) in mapping.iter().enumerate() {
        let got: Option<String> = conn
            .exec_first(
                "SELECT UPPER(COLUMN_TYPE) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'm' AND COLUMN_NAME = ?",
                (s.name.clone(), col_name(i)),
            )
            .await
            .expect("column type");
        let want = Dialect::MariaDb.type_name(doc_type);
        let got = got.unwrap_or_default();
        // MariaDB adds display widths (INT(11)) and spells BOOLEAN as TINYINT(1).
        let base = |t: &str| t.split('(').next().unwrap_or("").to_owned();
        let same = got == want
            || (base(&got) == base(&want) && !want.contains('('))
            || (want == "BOOLEAN" && got == "TINYINT(1)")
            || (want == "JSON" && got == "LONGTEXT");
        if !same {
            wrong.push(format!("{pg}: sink column is {got}, expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "sink columns:\n{}", wrong.join("\n"));
    s.finish(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_type_arrives_with_the_value_its_column_holds() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "types_values", &["v"]).await;
    let b = Scenario::new(&stack, "types_mapping", &["m"]).await;
    run_all(vec![
        (
            "every_type_arrives_as_the_column_holds_it",
            Box::pin(every_type_arrives_as_the_column_holds_it(a)),
        ),
        (
            "documented_mapping_is_the_mapping",
            Box::pin(documented_mapping_is_the_mapping(b)),
        ),
    ])
    .await;
}
