use super::*;

fn enc(ty: &PgType, text: &str, target: JsonTarget) -> Result<String, ConvError> {
    let mut out = b"X".to_vec();
    encode_json(ty, text, target, &mut out)?;
    Ok(String::from_utf8(out[1..].to_vec()).expect("utf8"))
}

fn ok(ty: &PgType, text: &str) -> String {
    enc(ty, text, JsonTarget::Native).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn scalars() {
    assert_eq!(ok(&PgType::Bool, "t"), "true");
    assert_eq!(ok(&PgType::Bool, "f"), "false");
    assert_eq!(
        ok(&PgType::Integer, "-9223372036854775808"),
        "-9223372036854775808"
    );
    assert!(enc(&PgType::Integer, "1x", JsonTarget::Native).is_err());
    // Found by the fuzzer: leading zeros are not a JSON number.
    for bad in ["00", "0001", "-01", "", "-"] {
        assert!(
            enc(&PgType::Integer, bad, JsonTarget::Native).is_err(),
            "{bad}"
        );
    }
    assert_eq!(ok(&PgType::Integer, "0"), "0");
    assert_eq!(ok(&PgType::Integer, "-0"), "-0");
    assert_eq!(ok(&PgType::Float, "1.5e+300"), "1.5e+300");
    assert_eq!(ok(&PgType::Float, "-0"), "-0");
    assert_eq!(ok(&PgType::Float, "NaN"), "\"NaN\"");
    assert_eq!(ok(&PgType::Float, "-Infinity"), "\"-Infinity\"");
    assert_eq!(
        ok(&PgType::Numeric, "123456789012345678901234567890.000000001"),
        "\"123456789012345678901234567890.000000001\""
    );
    let e = enc(&PgType::Numeric, "NaN", JsonTarget::Native).expect_err("NaN");
    assert!(e.0.contains("NaN"));
    assert_eq!(
        enc(&PgType::Numeric, "NaN", JsonTarget::Text).expect("text"),
        "\"NaN\""
    );
    assert_eq!(ok(&PgType::Bytea, "\\xDEadbeef"), "\"deadbeef\"");
    assert_eq!(ok(&PgType::Bytea, "\\x"), "\"\"");
    assert!(enc(&PgType::Bytea, "\\x0", JsonTarget::Native).is_err());
    assert_eq!(
        ok(&PgType::Text, "a\"b\\c\n\u{1}é😀"),
        "\"a\\\"b\\\\c\\n\\u0001é😀\""
    );
}

#[test]
fn dates_and_timestamps() {
    assert_eq!(ok(&PgType::Date, "2024-02-29"), "\"2024-02-29\"");
    for bad in [
        "2023-02-29",
        "infinity",
        "0044-03-15 BC",
        "10000-01-01",
        "2024-13-01",
    ] {
        assert!(
            enc(&PgType::Date, bad, JsonTarget::Native).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        ok(&PgType::Timestamp, "2024-01-31 23:59:59.5"),
        "\"2024-01-31 23:59:59.5\""
    );
    assert_eq!(
        ok(&PgType::TimestampTz, "2024-01-31 12:00:00.123456+00"),
        "\"2024-01-31 12:00:00.123456\""
    );
    assert_eq!(
        ok(&PgType::TimestampTz, "2024-01-01 03:00:00+05:30"),
        "\"2023-12-31 21:30:00\""
    );
    assert_eq!(
        ok(&PgType::TimestampTz, "2024-02-28 22:00:00-03:30:15"),
        "\"2024-02-29 01:30:15\""
    );
    for bad in [
        "infinity",
        "-infinity",
        "2024-01-01 00:00:00+00 BC",
        "2024-01-01 24:00:00+00",
    ] {
        assert!(
            enc(&PgType::TimestampTz, bad, JsonTarget::Native).is_err(),
            "{bad}"
        );
    }
    assert!(enc(
        &PgType::TimestampTz,
        "0001-01-01 00:00:00+01",
        JsonTarget::Native
    )
    .is_err());
}

#[test]
fn json_targets() {
    let j = "{\"a\": [1, null]}";
    assert_eq!(enc(&PgType::Json, j, JsonTarget::Json).expect("json"), j);
    assert_eq!(
        enc(&PgType::Json, j, JsonTarget::Native).expect("json"),
        "\"{\\\"a\\\": [1, null]}\""
    );
    assert!(enc(&PgType::Json, "{", JsonTarget::Json).is_err());
}

#[test]
fn arrays() {
    let int = PgType::Array(Box::new(PgType::Integer));
    assert_eq!(ok(&int, "{}"), "[]");
    assert_eq!(ok(&int, "{1,NULL,-3}"), "[1,null,-3]");
    assert_eq!(ok(&int, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
    assert_eq!(ok(&int, "[0:1]={7,8}"), "[7,8]");
    let text = PgType::Array(Box::new(PgType::Text));
    assert_eq!(
        ok(&text, r#"{"a b","c\"d",NULL,"NULL","x\\y",plain,"{}"}"#),
        r#"["a b","c\"d",null,"NULL","x\\y","plain","{}"]"#
    );
    let js = PgType::Array(Box::new(PgType::Json));
    assert_eq!(
        enc(&js, r#"{"{\"a\": 1}",NULL}"#, JsonTarget::Json).expect("json array"),
        r#"[{"a": 1},null]"#
    );
    for bad in ["{1,2", "{1,,2}", "{1}x", "1,2}", "{\"a}", "{{1},2}x", "{,}"] {
        assert!(enc(&int, bad, JsonTarget::Native).is_err(), "{bad}");
    }
}

#[test]
fn resolution() {
    let mut reg = TypeRegistry::new();
    assert_eq!(PgType::resolve(23, -1, &reg), PgType::Integer);
    assert_eq!(
        PgType::resolve(1007, -1, &reg),
        PgType::Array(Box::new(PgType::Integer))
    );
    reg.register(&TypeInfo {
        xid: None,
        oid: 70000,
        namespace: "pg_catalog".into(),
        name: "numeric".into(),
    });
    assert_eq!(PgType::resolve(70000, -1, &reg), PgType::Numeric);
    reg.register(&TypeInfo {
        xid: None,
        oid: 70001,
        namespace: "public".into(),
        name: "mood".into(),
    });
    assert!(matches!(
        PgType::resolve(70001, -1, &reg),
        PgType::Unknown { .. }
    ));
    reg.mark_enum(70001);
    assert_eq!(PgType::resolve(70001, -1, &reg), PgType::Text);
    reg.register(&TypeInfo {
        xid: None,
        oid: 70002,
        namespace: "public".into(),
        name: "_mood".into(),
    });
    assert_eq!(
        PgType::resolve(70002, -1, &reg),
        PgType::Array(Box::new(PgType::Text))
    );
    assert!(matches!(
        PgType::resolve(99999, -1, &reg),
        PgType::Unknown { name: None, .. }
    ));
}

#[test]
fn codec_errors_name_the_column() {
    let c = ColumnCodec::new("public.t", "price", PgType::Numeric);
    let mut out = Vec::new();
    let e = c
        .encode("NaN", JsonTarget::Native, &mut out)
        .expect_err("NaN");
    assert_eq!(e.table, "public.t");
    assert_eq!(e.column, "price");
    assert!(e.to_string().contains("public.t.price"));
    assert!(out.is_empty());
}

#[test]
fn json_number_grammar() {
    for ok in [
        "0", "-0", "1", "42", "0.5", "-1.25", "1e10", "1E+5", "-1.5e-3", "2.0E07",
    ] {
        assert!(is_json_number(ok.as_bytes()), "{ok} rejected");
    }
    for bad in [
        "", "-", "01", "-01", "1.", ".5", "1e", "1e+", "NaN", "1.5x", "--1", "+1", "1e5.0",
    ] {
        assert!(!is_json_number(bad.as_bytes()), "{bad} accepted");
    }
}
