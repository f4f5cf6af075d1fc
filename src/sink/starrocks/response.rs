//! Stream Load replies, in both shapes StarRocks produces.
//!
//! - The BE's result (`TxnId`, `Label`, `Status`, `Message`, `Number*Rows`, …) for a
//!   load that reached a backend. HTTP 200 even when the load failed.
//! - The FE's `RestBaseResult` (`status: "FAILED"`, `code`, `msg`, `message`) for a
//!   request the frontend rejected before redirecting.
//!
//! Keys are matched case-insensitively and unknown keys are ignored, like the
//! official SDK does. A reply with no status at all is an error, never a success.

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

/// Outcome reported by StarRocks for one load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadStatus {
    /// Committed and visible.
    Success,
    /// Committed, not yet visible everywhere.
    PublishTimeout,
    /// The label was used before; the job is in `existing` state.
    LabelExists {
        /// `ExistingJobStatus` (FINISHED, RUNNING, …); empty when absent.
        existing: String,
    },
    /// The load failed; nothing was applied.
    Fail,
    /// A status string dbmazz does not know.
    Other(String),
}

/// A parsed reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReply {
    /// The outcome.
    pub status: LoadStatus,
    /// `Message`/`msg` text.
    pub message: String,
    /// Transaction id, when given.
    pub txn_id: Option<i64>,
    /// Label echoed back.
    pub label: Option<String>,
    /// Rows read.
    pub total_rows: u64,
    /// Rows loaded.
    pub loaded_rows: u64,
    /// Rows rejected for data quality.
    pub filtered_rows: u64,
    /// Rows removed by `where`.
    pub unselected_rows: u64,
    /// Link to the rejected rows.
    pub error_url: Option<String>,
    /// True when this was the FE's error shape.
    pub from_frontend: bool,
}

/// The reply could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Stream Load reply ({reason}): {excerpt}")]
pub struct ReplyError {
    /// What was wrong.
    pub reason: String,
    /// The first bytes of the body.
    pub excerpt: String,
}

fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    s.replace(['\n', '\r'], " ")
}

fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let o = obj.as_object()?;
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(obj: &Value, name: &str) -> Option<String> {
    field(obj, name).and_then(|v| {
        v.as_str()
            .map(str::to_owned)
            .or_else(|| (!v.is_null()).then(|| v.to_string()))
    })
}

fn number(obj: &Value, name: &str) -> u64 {
    field(obj, name)
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0)
}

/// Parses a load or transaction reply body.
pub fn parse(body: &[u8]) -> Result<LoadReply, ReplyError> {
    let v: Value = sonic_rs::from_slice(body).map_err(|e| ReplyError {
        reason: format!("not JSON: {e}"),
        excerpt: excerpt(body),
    })?;
    if !v.is_object() {
        return Err(ReplyError {
            reason: "not a JSON object".into(),
            excerpt: excerpt(body),
        });
    }
    let status_text = text(&v, "Status").ok_or_else(|| ReplyError {
        reason: "no Status field".into(),
        excerpt: excerpt(body),
    })?;
    // The FE shape has lower-case keys and `msg`; the BE shape has `Message`.
    let from_frontend =
        field(&v, "Label").is_none() && (field(&v, "msg").is_some() || field(&v, "code").is_some());
    let status = match status_text.as_str() {
        "Success" | "OK" => LoadStatus::Success,
        "Publish Timeout" | "PUBLISH_TIMEOUT" => LoadStatus::PublishTimeout,
        "Label Already Exists" | "LABEL_ALREADY_EXISTS" => LoadStatus::LabelExists {
            existing: text(&v, "ExistingJobStatus").unwrap_or_default(),
        },
        "Fail" | "FAILED" => LoadStatus::Fail,
        other => LoadStatus::Other(other.to_owned()),
    };
    let message = text(&v, "Message")
        .or_else(|| text(&v, "msg"))
        .unwrap_or_default();
    Ok(LoadReply {
        status,
        message,
        txn_id: field(&v, "TxnId").and_then(|x| x.as_i64()),
        label: text(&v, "Label"),
        total_rows: number(&v, "NumberTotalRows"),
        loaded_rows: number(&v, "NumberLoadedRows"),
        filtered_rows: number(&v, "NumberFilteredRows"),
        unselected_rows: number(&v, "NumberUnselectedRows"),
        error_url: text(&v, "ErrorURL").filter(|s| !s.is_empty()),
        from_frontend,
    })
}

/// Parses a `get_load_state` reply: the `state` field (upper-cased).
pub fn parse_label_state(body: &[u8]) -> Result<String, ReplyError> {
    let v: Value = sonic_rs::from_slice(body).map_err(|e| ReplyError {
        reason: format!("not JSON: {e}"),
        excerpt: excerpt(body),
    })?;
    // Newer versions nest it under `data`, older ones put it at the top.
    let state = text(&v, "state")
        .or_else(|| field(&v, "data").and_then(|d| text(d, "state")))
        .ok_or_else(|| ReplyError {
            reason: "no state field".into(),
            excerpt: excerpt(body),
        })?;
    Ok(state.to_ascii_uppercase())
}

/// How a failed load should be treated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The data cannot be loaded as it is (types, constraints, filtered rows):
    /// retrying cannot help.
    Data,
    /// Configuration or permissions: retrying cannot help until someone acts.
    Config,
    /// Load, timeouts, unavailable backends: retry with the same label.
    Transient,
    /// Not recognised: retry a bounded number of times.
    Unknown,
}

/// Classifies a `Fail` message.
pub fn classify_failure(message: &str) -> FailureKind {
    let m = message.to_ascii_lowercase();
    const DATA: &[&str] = &[
        "too many filtered rows",
        "filtered",
        "data quality",
        "null value",
        "is not nullable",
        "out of range",
        "value too long",
        "the length of input is longer",
        "invalid value",
        "cannot convert",
        "failed to parse",
        "invalid json",
        "parse json",
        "decimal overflow",
        "column count",
    ];
    const CONFIG: &[&str] = &[
        "access denied",
        "no valid basic authorization",
        "unknown database",
        "unknown table",
        "table not found",
        "database not found",
        "does not exist",
        "unknown column",
        "not primary key",
        "merge_condition",
        "partial update",
        "privilege",
        "exceed the max size",
        "streaming_load_max_mb",
    ];
    const TRANSIENT: &[&str] = &[
        "timeout",
        "timed out",
        "too many",
        "busy",
        "no backend alive",
        "memory",
        "mem limit",
        "unavailable",
        "connection",
        "rpc",
        "try again",
        "retry",
        "is not ready",
        "publish",
        "leader",
        "shutdown",
        "cancelled",
    ];
    if DATA.iter().any(|p| m.contains(p)) {
        FailureKind::Data
    } else if CONFIG.iter().any(|p| m.contains(p)) {
        FailureKind::Config
    } else if TRANSIENT.iter().any(|p| m.contains(p)) {
        FailureKind::Transient
    } else {
        FailureKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_success_reply() {
        let r = parse(
            br#"{"TxnId": 7, "Label": "l1", "Status": "Success", "Message": "OK",
                 "NumberTotalRows": 3, "NumberLoadedRows": 3, "NumberFilteredRows": 0,
                 "NumberUnselectedRows": 0, "LoadBytes": 10, "LoadTimeMs": 1}"#,
        )
        .expect("parses");
        assert_eq!(r.status, LoadStatus::Success);
        assert_eq!(r.txn_id, Some(7));
        assert_eq!(r.loaded_rows, 3);
        assert!(!r.from_frontend);
    }

    #[test]
    fn label_exists_carries_the_existing_status() {
        let r = parse(
            br#"{"TxnId": -1, "Label": "l1", "Status": "Label Already Exists",
                 "ExistingJobStatus": "RUNNING", "Message": "label exists"}"#,
        )
        .expect("parses");
        assert_eq!(
            r.status,
            LoadStatus::LabelExists {
                existing: "RUNNING".into()
            }
        );
    }

    #[test]
    fn frontend_error_shape_is_understood() {
        let r = parse(br#"{"status":"FAILED","code":"1","msg":"There is no 100-continue header","message":"There is no 100-continue header"}"#)
            .expect("parses");
        assert_eq!(r.status, LoadStatus::Fail);
        assert!(r.from_frontend);
        assert!(r.message.contains("100-continue"));
    }

    #[test]
    fn keys_are_case_insensitive() {
        let r = parse(br#"{"status":"Success","message":"OK","numberloadedrows":"4"}"#)
            .expect("parses");
        assert_eq!(r.status, LoadStatus::Success);
        assert_eq!(r.loaded_rows, 4);
    }

    #[test]
    fn a_reply_without_status_is_an_error() {
        for body in [&b"{}"[..], b"[]", b"<html>502</html>", b""] {
            assert!(parse(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn label_state_reply() {
        assert_eq!(
            parse_label_state(br#"{"state":"visible"}"#).expect("ok"),
            "VISIBLE"
        );
        assert_eq!(
            parse_label_state(br#"{"data":{"state":"ABORTED"}}"#).expect("ok"),
            "ABORTED"
        );
        assert!(parse_label_state(b"{}").is_err());
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(
            classify_failure("too many filtered rows"),
            FailureKind::Data
        );
        assert_eq!(
            classify_failure("no valid Basic authorization"),
            FailureKind::Config
        );
        assert_eq!(
            classify_failure(
                "current running txns on db 10 is 1000, larger than limit 1000, too many"
            ),
            FailureKind::Transient
        );
        assert_eq!(classify_failure("something odd"), FailureKind::Unknown);
    }
}
