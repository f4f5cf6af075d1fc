//! Response bodies shaped exactly as StarRocks shapes them.
//!
//! * BE Stream Load result: `StreamLoadContext::to_json` — pretty-printed, keys in a
//!   fixed order, HTTP 200 even on failure.
//! * BE transaction result: `StreamLoadContext::to_resp_json` — `Status` is the
//!   upper-case status-code name.
//! * FE errors: Gson `RestBaseResult` (`status`/`code`/`msg`/`message`, compact), and
//!   the FE transaction handler's `TransactionResult` (`Status`/`Message` + entries).

/// A pretty-printed JSON object writer (rapidjson `PrettyWriter` layout: 4 spaces).
#[derive(Debug, Default)]
pub struct Pretty {
    out: String,
    any: bool,
}

impl Pretty {
    /// Starts an object.
    pub fn new() -> Self {
        Pretty {
            out: String::from("{"),
            any: false,
        }
    }

    fn key(&mut self, k: &str) {
        self.out
            .push_str(if self.any { ",\n    " } else { "\n    " });
        self.any = true;
        push_json_str(&mut self.out, k);
        self.out.push_str(": ");
    }

    /// A string member.
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        push_json_str(&mut self.out, v);
        self
    }

    /// An integer member.
    pub fn int(mut self, k: &str, v: i64) -> Self {
        self.key(k);
        self.out.push_str(&v.to_string());
        self
    }

    /// Finishes the object.
    pub fn finish(mut self) -> String {
        self.out.push_str(if self.any { "\n}" } else { "}" });
        self.out
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Final status of a Stream Load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadStatus {
    /// `Success`
    Success,
    /// `Publish Timeout`
    PublishTimeout,
    /// `Label Already Exists` with the `ExistingJobStatus`.
    LabelAlreadyExists(String),
    /// `Fail`
    Fail,
}

/// The BE's Stream Load result.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Transaction id (-1 when none was begun).
    pub txn_id: i64,
    /// Label.
    pub label: String,
    /// Status.
    pub status: LoadStatus,
    /// `OK` on success, else the error.
    pub message: String,
    /// Rows read.
    pub total: u64,
    /// Rows loaded.
    pub loaded: u64,
    /// Rows filtered.
    pub filtered: u64,
    /// Rows removed by `where` (always 0: not emulated).
    pub unselected: u64,
    /// Body bytes received.
    pub load_bytes: u64,
    /// Total time.
    pub load_ms: u64,
    /// Begin-transaction time.
    pub begin_ms: u64,
    /// Plan time.
    pub plan_ms: u64,
    /// Body read time.
    pub read_ms: u64,
    /// Write time.
    pub write_ms: u64,
    /// Commit time.
    pub commit_ms: u64,
    /// Error log URL.
    pub error_url: Option<String>,
}

impl LoadResult {
    /// A result with all counters zero.
    pub fn new(label: &str, status: LoadStatus, message: impl Into<String>) -> Self {
        LoadResult {
            txn_id: -1,
            label: label.to_owned(),
            status,
            message: message.into(),
            total: 0,
            loaded: 0,
            filtered: 0,
            unselected: 0,
            load_bytes: 0,
            load_ms: 0,
            begin_ms: 0,
            plan_ms: 0,
            read_ms: 0,
            write_ms: 0,
            commit_ms: 0,
            error_url: None,
        }
    }

    /// A failure before anything was read.
    pub fn fail(label: &str, message: impl Into<String>) -> Self {
        Self::new(label, LoadStatus::Fail, message)
    }

    /// `to_json`.
    pub fn to_json(&self) -> String {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut p = Pretty::new()
            .int("TxnId", self.txn_id)
            .str("Label", &self.label);
        p = match &self.status {
            LoadStatus::Success => p.str("Status", "Success"),
            LoadStatus::PublishTimeout => p.str("Status", "Publish Timeout"),
            LoadStatus::LabelAlreadyExists(s) => p
                .str("Status", "Label Already Exists")
                .str("ExistingJobStatus", s),
            LoadStatus::Fail => p.str("Status", "Fail"),
        };
        let msg = if self.status == LoadStatus::Success {
            "OK"
        } else {
            self.message.as_str()
        };
        p = p
            .str("Message", msg)
            .int("NumberTotalRows", i(self.total))
            .int("NumberLoadedRows", i(self.loaded))
            .int("NumberFilteredRows", i(self.filtered))
            .int("NumberUnselectedRows", i(self.unselected))
            .int("LoadBytes", i(self.load_bytes))
            .int("LoadTimeMs", i(self.load_ms))
            .int("BeginTxnTimeMs", i(self.begin_ms))
            .int("StreamLoadPlanTimeMs", i(self.plan_ms))
            .int("ReadDataTimeMs", i(self.read_ms))
            .int("WriteDataTimeMs", i(self.write_ms))
            .int("CommitAndPublishTimeMs", i(self.commit_ms));
        if let Some(u) = &self.error_url {
            p = p.str("ErrorURL", u);
        }
        p.finish()
    }
}

/// Which transaction operation a `to_resp_json` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOp {
    /// begin
    Begin,
    /// load
    Load,
    /// prepare / commit (the BE formats both as commit)
    Commit,
    /// rollback
    Rollback,
}

/// The BE's transaction response.
#[derive(Debug, Clone)]
pub struct TxnResp {
    /// Status-code name (`OK`, `LABEL_ALREADY_EXISTS`, `TXN_NOT_EXISTS`, ...).
    pub code: &'static str,
    /// `ExistingJobStatus` for `LABEL_ALREADY_EXISTS`.
    pub existing: Option<String>,
    /// Message (empty on OK).
    pub message: String,
    /// Label.
    pub label: String,
    /// Transaction id.
    pub txn_id: i64,
    /// Rows read.
    pub total: u64,
    /// Rows loaded.
    pub loaded: u64,
    /// Rows filtered.
    pub filtered: u64,
    /// Bytes received (this request for load, all loads for commit).
    pub load_bytes: u64,
    /// Elapsed time.
    pub load_ms: u64,
    /// Error log URL.
    pub error_url: Option<String>,
}

impl TxnResp {
    /// A response with zero counters.
    pub fn new(code: &'static str, label: &str, message: impl Into<String>) -> Self {
        TxnResp {
            code,
            existing: None,
            message: message.into(),
            label: label.to_owned(),
            txn_id: -1,
            total: 0,
            loaded: 0,
            filtered: 0,
            load_bytes: 0,
            load_ms: 0,
            error_url: None,
        }
    }

    /// `to_resp_json(op, status)`.
    pub fn to_json(&self, op: TxnOp) -> String {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut p = Pretty::new().str("Status", self.code);
        if self.code == "LABEL_ALREADY_EXISTS" {
            p = p.str(
                "ExistingJobStatus",
                self.existing.as_deref().unwrap_or("RUNNING"),
            );
        } else if self.code == "TXN_IN_PROCESSING" {
            p = p.str("Label", &self.label);
        }
        p = p.str("Message", &self.message);
        if self.code == "OK" {
            p = p.str("Label", &self.label);
            match op {
                TxnOp::Begin => p = p.int("TxnId", self.txn_id).int("BeginTxnTimeMs", 0),
                TxnOp::Load => {
                    p = p
                        .int("TxnId", self.txn_id)
                        .int("LoadBytes", i(self.load_bytes))
                        .int("StreamLoadPlanTimeMs", 0)
                        .int("ReceivedDataTimeMs", 0)
                }
                TxnOp::Commit => {
                    p = p
                        .int("TxnId", self.txn_id)
                        .int("NumberTotalRows", i(self.total))
                        .int("NumberLoadedRows", i(self.loaded))
                        .int("NumberFilteredRows", i(self.filtered))
                        .int("NumberUnselectedRows", 0)
                        .int("LoadBytes", i(self.load_bytes))
                        .int("LoadTimeMs", i(self.load_ms))
                        .int("StreamLoadPlanTimeMs", 0)
                        .int("ReceivedDataTimeMs", 0)
                        .int("WriteDataTimeMs", 0)
                        .int("CommitAndPublishTimeMs", 0)
                }
                TxnOp::Rollback => {}
            }
        }
        if let Some(u) = &self.error_url {
            p = p.str("ErrorURL", u);
        }
        p.finish()
    }
}

/// Gson `RestBaseResult` for an FE error (compact, lower-case keys).
pub fn rest_error(msg: &str) -> String {
    let mut s = String::from("{\"status\":\"FAILED\",\"code\":\"1\",\"msg\":");
    push_json_str(&mut s, msg);
    s.push_str(",\"message\":");
    push_json_str(&mut s, msg);
    s.push('}');
    s
}

/// Gson `RestBaseResult` for success.
pub fn rest_ok() -> String {
    "{\"status\":\"OK\",\"code\":\"0\",\"msg\":\"Success\",\"message\":\"OK\"}".to_owned()
}

/// The FE's `get_load_state` result (subclass fields first, as Gson writes them).
pub fn load_state(state: &str, reason: Option<&str>) -> String {
    let mut s = String::from("{\"state\":");
    push_json_str(&mut s, state);
    if let Some(r) = reason {
        s.push_str(",\"reason\":");
        push_json_str(&mut s, r);
    }
    s.push_str(",\"status\":\"OK\",\"code\":\"0\",\"msg\":\"Success\",\"message\":\"OK\"}");
    s
}

/// The FE's `TransactionResult` (pretty-printed map).
pub fn fe_txn_result(status: &str, message: &str, entries: &[(&str, Entry<'_>)]) -> String {
    let mut p = Pretty::new().str("Status", status).str("Message", message);
    for (k, v) in entries {
        p = match v {
            Entry::Str(s) => p.str(k, s),
            Entry::Int(i) => p.int(k, *i),
        };
    }
    p.finish()
}

/// A `TransactionResult` entry.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// String value.
    Str(&'a str),
    /// Integer value.
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_load_keys_are_in_starrocks_order() {
        let mut r = LoadResult::new(
            "l1",
            LoadStatus::LabelAlreadyExists("FINISHED".into()),
            "Label [l1] has already been used.",
        );
        r.error_url = Some("http://h/api/_load_error_log?file=x".into());
        let j = r.to_json();
        let keys: Vec<&str> = j
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert_eq!(
            keys,
            [
                "TxnId",
                "Label",
                "Status",
                "ExistingJobStatus",
                "Message",
                "NumberTotalRows",
                "NumberLoadedRows",
                "NumberFilteredRows",
                "NumberUnselectedRows",
                "LoadBytes",
                "LoadTimeMs",
                "BeginTxnTimeMs",
                "StreamLoadPlanTimeMs",
                "ReadDataTimeMs",
                "WriteDataTimeMs",
                "CommitAndPublishTimeMs",
                "ErrorURL"
            ]
        );
        let v: sonic_rs::Value = sonic_rs::from_str(&j).expect("valid json");
        assert!(sonic_rs::JsonValueTrait::is_object(&v));
        let ok = LoadResult::new("l", LoadStatus::Success, "ignored").to_json();
        assert!(ok.contains("\"Message\": \"OK\""));
    }

    #[test]
    fn fe_shapes() {
        assert_eq!(
            rest_error("x\"y"),
            r#"{"status":"FAILED","code":"1","msg":"x\"y","message":"x\"y"}"#
        );
        let t = TxnResp::new("TXN_NOT_EXISTS", "l", "gone").to_json(TxnOp::Load);
        assert!(t.starts_with("{\n    \"Status\": \"TXN_NOT_EXISTS\""));
        assert!(!t.contains("TxnId"));
    }
}
