use super::fixtures::{schema, tuple};
use super::*;

const U: Option<&str> = Some("\u{1}u");

fn txn(lsn: u64, changes: Vec<Change>) -> Transaction {
    Transaction {
        commit_lsn: Lsn(lsn),
        end_lsn: Lsn(lsn + 1),
        commit_time: 0,
        changes,
        bytes: 0,
    }
}

fn row(s: &Arc<TableSchema>, op: RowOp, lsn: u64, vals: &[Option<&str>]) -> Change {
    Change::Row {
        schema: s.clone(),
        row: Row::new(op, Lsn(lsn), tuple(vals), false),
    }
}

fn values(b: &Batch) -> Vec<(RowOp, u64, Vec<ColumnValue<'_>>)> {
    let Segment::Rows(seg) = &b.tables[0].segments[0] else {
        panic!("rows expected")
    };
    seg.rows
        .iter()
        .map(|r| {
            (
                r.op,
                r.version.0,
                (0..3).map(|i| r.value(&seg.schema, i)).collect(),
            )
        })
        .collect()
}

#[test]
fn later_changes_to_a_key_fold_into_one_row() {
    let s = schema();
    let mut b = Batch::new(0);
    b.add_transaction(txn(
        10,
        vec![
            Change::Row {
                schema: s.clone(),
                row: Row::new(
                    RowOp::Insert,
                    Lsn(10),
                    tuple(&[Some("1"), Some("x"), Some("B")]),
                    false,
                ),
            },
            Change::Row {
                schema: s.clone(),
                row: Row::new(
                    RowOp::Insert,
                    Lsn(10),
                    tuple(&[Some("2"), Some("y"), Some("C")]),
                    false,
                ),
            },
        ],
    ))
    .expect("fold");
    b.add_transaction(txn(
        20,
        vec![Change::Row {
            schema: s.clone(),
            row: Row::new(
                RowOp::Update,
                Lsn(20),
                tuple(&[Some("1"), Some("z"), U]),
                false,
            ),
        }],
    ))
    .expect("fold");
    let v = values(&b);
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[0],
        (
            RowOp::Update,
            20,
            vec![
                ColumnValue::Text("1"),
                ColumnValue::Text("z"),
                ColumnValue::Text("B")
            ]
        ),
        "the unchanged TOAST value comes from the insert folded away"
    );
    assert_eq!(b.tables[0].counts.inserts, 2);
    assert_eq!(b.tables[0].counts.updates, 1);
    assert_eq!(b.first_commit, Lsn(10));
    assert_eq!(b.end_lsn, Lsn(21));
}

#[test]
fn unchanged_toast_without_older_image_stays_absent() {
    let s = schema();
    let mut b = Batch::new(0);
    b.add_transaction(txn(
        5,
        vec![row(&s, RowOp::Update, 5, &[Some("1"), Some("a"), U])],
    ))
    .expect("fold");
    let v = values(&b);
    assert_eq!(v[0].2[2], ColumnValue::Absent);
}

#[test]
fn full_identity_old_row_fills_unchanged_toast() {
    let s = schema();
    let mut b = Batch::new(0);
    let r = Row::new(
        RowOp::Update,
        Lsn(5),
        tuple(&[Some("1"), Some("a"), U]),
        false,
    )
    .with_fill(tuple(&[Some("1"), Some("old"), Some("BIG")]));
    b.add_transaction(txn(5, vec![Change::Row { schema: s, row: r }]))
        .expect("fold");
    let v = values(&b);
    assert_eq!(
        v[0].2,
        vec![
            ColumnValue::Text("1"),
            ColumnValue::Text("a"),
            ColumnValue::Text("BIG")
        ]
    );
}

#[test]
fn key_only_delete_takes_values_from_earlier_rows() {
    let s = schema();
    let mut b = Batch::new(0);
    b.add_transaction(txn(
        5,
        vec![
            row(&s, RowOp::Insert, 5, &[Some("1"), Some("a"), Some("B")]),
            Change::Row {
                schema: s.clone(),
                row: Row::new(RowOp::Delete, Lsn(5), tuple(&[Some("1"), None, None]), true),
            },
        ],
    ))
    .expect("fold");
    let v = values(&b);
    assert_eq!(v[0].0, RowOp::Delete);
    assert_eq!(
        v[0].2,
        vec![
            ColumnValue::Text("1"),
            ColumnValue::Text("a"),
            ColumnValue::Text("B")
        ]
    );
}

#[test]
fn key_only_delete_without_history_has_only_the_key() {
    let s = schema();
    let mut b = Batch::new(0);
    b.add_transaction(txn(
        5,
        vec![Change::Row {
            schema: s,
            row: Row::new(RowOp::Delete, Lsn(5), tuple(&[Some("1"), None, None]), true),
        }],
    ))
    .expect("fold");
    let v = values(&b);
    assert_eq!(
        v[0].2,
        vec![
            ColumnValue::Text("1"),
            ColumnValue::Absent,
            ColumnValue::Absent
        ]
    );
}

#[test]
fn delete_then_reinsert_ends_as_the_insert() {
    let s = schema();
    let mut b = Batch::new(0);
    b.add_transaction(txn(
        5,
        vec![
            row(&s, RowOp::Delete, 5, &[Some("1"), Some("a"), Some("B")]),
            row(&s, RowOp::Insert, 5, &[Some("1"), Some("n"), Some("N")]),
        ],
    ))
    .expect("fold");
    let v = values(&b);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, RowOp::Insert);
    assert_eq!(v[0].2[1], ColumnValue::Text("n"));
}

#[test]
fn key_change_deletes_old_key_and_carries_toast_to_new_key() {
    let s = schema();
    let mut b = Batch::new(0);
    b.add_transaction(txn(
        5,
        vec![
            row(&s, RowOp::Insert, 5, &[Some("1"), Some("a"), Some("BIG")]),
            Change::KeyChange {
                schema: s.clone(),
                rows: Box::new((
                    Row::new(RowOp::Delete, Lsn(5), tuple(&[Some("1"), None, None]), true),
                    Row::new(
                        RowOp::Update,
                        Lsn(5),
                        tuple(&[Some("2"), Some("a"), U]),
                        false,
                    ),
                )),
            },
        ],
    ))
    .expect("fold");
    let v = values(&b);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].0, RowOp::Delete);
    assert_eq!(v[0].2[0], ColumnValue::Text("1"));
    assert_eq!(v[1].0, RowOp::Update);
    assert_eq!(
        v[1].2,
        vec![
            ColumnValue::Text("2"),
            ColumnValue::Text("a"),
            ColumnValue::Text("BIG")
        ]
    );
}

#[test]
fn key_change_with_unresolvable_toast_is_an_error() {
    let s = schema();
    let mut b = Batch::new(0);
    let err = b
        .add_transaction(txn(
            5,
            vec![Change::KeyChange {
                schema: s,
                rows: Box::new((
                    Row::new(RowOp::Delete, Lsn(5), tuple(&[Some("1"), None, None]), true),
                    Row::new(
                        RowOp::Update,
                        Lsn(5),
                        tuple(&[Some("2"), Some("a"), U]),
                        false,
                    ),
                )),
            }],
        ))
        .expect_err("toast unavailable");
    assert!(matches!(err, FoldError::ToastOnKeyChange { ref column, .. } if column == "big"));
}

#[test]
fn truncate_splits_segments_and_schema_change_starts_a_new_one() {
    let s = schema();
    let mut s2 = (*s).clone();
    s2.generation = 1;
    let s2 = Arc::new(s2);
    let mut b = Batch::new(0);
    b.add_transaction(txn(
        5,
        vec![
            row(&s, RowOp::Insert, 5, &[Some("1"), Some("a"), Some("B")]),
            Change::Truncate {
                schema: s.clone(),
                cascade: false,
                restart_identity: false,
            },
            row(&s, RowOp::Insert, 5, &[Some("1"), Some("b"), Some("B")]),
            Change::Row {
                schema: s2,
                row: Row::new(
                    RowOp::Insert,
                    Lsn(5),
                    tuple(&[Some("3"), Some("c"), Some("C")]),
                    false,
                ),
            },
        ],
    ))
    .expect("fold");
    let segs = &b.tables[0].segments;
    assert_eq!(segs.len(), 4);
    assert!(matches!(
        segs[1],
        Segment::Truncate {
            version: Lsn(5),
            ..
        }
    ));
    assert!(b.tables[0].has_truncate());
}

#[test]
fn missing_key_value_is_an_error() {
    let s = schema();
    let mut b = Batch::new(0);
    let err = b
        .add_transaction(txn(
            5,
            vec![row(&s, RowOp::Update, 5, &[U, Some("a"), Some("b")])],
        ))
        .expect_err("key unavailable");
    assert!(err.to_string().contains("REPLICA IDENTITY FULL"));
}
