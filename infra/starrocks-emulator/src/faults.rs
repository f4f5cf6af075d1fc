//! Deterministic fault injection, scripted through the admin port.
//!
//! Faults wait in a FIFO queue. When a request reaches the FE or the BE, the first
//! queued fault whose site (FE or BE), operation and scope (db/table/label glob
//! patterns) match is applied and its count decremented; at zero it leaves the queue.
//! A test can therefore script an exact sequence ("the next two loads to `orders` get
//! HTTP 503, then one is applied but its response is lost").

use serde::{Deserialize, Serialize};

/// Which request a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `PUT /api/{db}/{table}/_stream_load`
    StreamLoad,
    /// `/api/transaction/begin`
    TxnBegin,
    /// `/api/transaction/load`
    TxnLoad,
    /// `/api/transaction/prepare`
    TxnPrepare,
    /// `/api/transaction/commit`
    TxnCommit,
    /// `/api/transaction/rollback`
    TxnRollback,
    /// `GET /api/{db}/get_load_state`
    GetLoadState,
    /// `POST /api/{db}/{label}/_cancel`
    Cancel,
}

/// Where the request is being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// The FE port.
    Fe,
    /// The BE port.
    #[default]
    Be,
}

/// What happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this HTTP status (and body) without doing anything.
    HttpStatus {
        /// HTTP status code.
        status: u16,
        /// Response body.
        #[serde(default)]
        body: String,
        /// FE or BE (default BE).
        #[serde(default)]
        at: Site,
    },
    /// Answer `Status: Fail` with this message (transaction ops: `INTERNAL_ERROR`);
    /// nothing is applied and the label stays free.
    Fail {
        /// The message.
        message: String,
    },
    /// Answer `Label Already Exists` with this `ExistingJobStatus`; nothing is applied.
    LabelAlreadyExists {
        /// `RUNNING` or `FINISHED`.
        existing_job_status: String,
    },
    /// Apply the load, answer `Publish Timeout`; the label is COMMITTED until
    /// `visible_after_ms` has passed, then VISIBLE.
    PublishTimeout {
        /// Delay before the label becomes VISIBLE.
        #[serde(default)]
        visible_after_ms: u64,
    },
    /// Wait before answering (`before_continue`: before reading the body, i.e. a slow
    /// `100 Continue`; `before_response`: after the work, before the answer).
    Delay {
        /// Milliseconds.
        ms: u64,
        /// When.
        #[serde(default)]
        phase: DelayPhase,
        /// FE or BE (default BE).
        #[serde(default)]
        at: Site,
    },
    /// Read this many body bytes, then close the connection; nothing is applied and
    /// the transaction is aborted.
    DropMidBody {
        /// Bytes to read first.
        #[serde(default)]
        after_bytes: u64,
    },
    /// Do the work (apply and commit), then close the connection without answering.
    LostResponse,
    /// The FE redirects to a port where no BE listens.
    RedirectDeadBe,
    /// The BE acts as if the redirected request carried no `Authorization`.
    BeIgnoresAuth,
    /// The FE answers its own error JSON (`rest`: lower-case RestBaseResult;
    /// `transaction`: `{"Status":"FAILED","Message":...}`) with this HTTP status.
    FeError {
        /// Message.
        message: String,
        /// Body shape.
        #[serde(default)]
        shape: FeShape,
        /// HTTP status (default 200, as StarRocks sends).
        #[serde(default = "ok_status")]
        status: u16,
    },
    /// Accept the load but keep its label RUNNING: answer `Label Already Exists` /
    /// `RUNNING` at once, and finish after `finish_after_ms` as `finish_as`
    /// (`visible`: applied; `aborted`: not applied).
    RunningLabel {
        /// Delay before the load finishes.
        finish_after_ms: u64,
        /// Outcome.
        #[serde(default)]
        finish_as: Outcome,
    },
}

fn ok_status() -> u16 {
    200
}

/// When a delay happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DelayPhase {
    /// Before the body is read (slow 100-continue).
    BeforeContinue,
    /// Before the response is sent.
    #[default]
    BeforeResponse,
}

/// FE error body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FeShape {
    /// `{"status":"FAILED","code":"1","msg":...,"message":...}`
    #[default]
    Rest,
    /// `{"Status":"FAILED","Message":...}`
    Transaction,
}

/// Final outcome of a RUNNING label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Applied and VISIBLE.
    #[default]
    Visible,
    /// ABORTED, nothing applied.
    Aborted,
}

/// A queued fault as posted to `POST /faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many matching requests it affects (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Operations it applies to (default: `["stream_load"]`).
    #[serde(default)]
    pub ops: Vec<OpKind>,
    /// Database glob (`*` wildcard).
    #[serde(default)]
    pub db: Option<String>,
    /// Table glob.
    #[serde(default)]
    pub table: Option<String>,
    /// Label glob.
    #[serde(default)]
    pub label: Option<String>,
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// The site where this fault acts.
    pub fn site(&self) -> Site {
        match &self.kind {
            FaultKind::HttpStatus { at, .. } | FaultKind::Delay { at, .. } => *at,
            FaultKind::RedirectDeadBe | FaultKind::FeError { .. } => Site::Fe,
            _ => Site::Be,
        }
    }

    fn ops(&self) -> Vec<OpKind> {
        if self.ops.is_empty() {
            vec![OpKind::StreamLoad]
        } else {
            self.ops.clone()
        }
    }

    /// Rejects combinations that cannot happen.
    pub fn validate(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        let ops = self.ops();
        let fe_only = [OpKind::GetLoadState, OpKind::Cancel];
        let allowed = |ok: &[OpKind]| -> Result<(), String> {
            match ops.iter().find(|o| !ok.contains(o)) {
                Some(o) => Err(format!("this fault kind cannot apply to {o:?}")),
                None => Ok(()),
            }
        };
        use OpKind::*;
        let all_be = [
            StreamLoad,
            TxnBegin,
            TxnLoad,
            TxnPrepare,
            TxnCommit,
            TxnRollback,
        ];
        match &self.kind {
            FaultKind::HttpStatus { status, at, .. } => {
                if !(100..=599).contains(status) {
                    return Err(format!("invalid HTTP status {status}"));
                }
                if *at == Site::Be && ops.iter().any(|o| fe_only.contains(o)) {
                    return Err("get_load_state and cancel are served by the FE: use at=fe".into());
                }
                Ok(())
            }
            FaultKind::Delay { at, .. } => {
                if *at == Site::Be && ops.iter().any(|o| fe_only.contains(o)) {
                    return Err("get_load_state and cancel are served by the FE: use at=fe".into());
                }
                Ok(())
            }
            FaultKind::Fail { .. } | FaultKind::LostResponse => allowed(&all_be),
            FaultKind::LabelAlreadyExists {
                existing_job_status,
            } => {
                if !["RUNNING", "FINISHED"].contains(&existing_job_status.as_str()) {
                    return Err("existing_job_status must be RUNNING or FINISHED".into());
                }
                allowed(&[StreamLoad, TxnBegin])
            }
            FaultKind::PublishTimeout { .. } | FaultKind::RunningLabel { .. } => {
                allowed(&[StreamLoad])
            }
            FaultKind::DropMidBody { .. } => allowed(&[StreamLoad, TxnLoad]),
            FaultKind::RedirectDeadBe | FaultKind::BeIgnoresAuth => allowed(&all_be),
            FaultKind::FeError { .. } => Ok(()),
        }
    }
}

fn glob(pattern: &Option<String>, value: &str) -> bool {
    let Some(p) = pattern else { return true };
    glob_match(p.as_bytes(), value.as_bytes())
}

fn glob_match(p: &[u8], v: &[u8]) -> bool {
    match p.split_first() {
        None => v.is_empty(),
        Some((b'*', rest)) => {
            (0..=v.len()).any(|i| glob_match(rest, v.get(i..).unwrap_or_default()))
        }
        Some((c, rest)) => v
            .split_first()
            .is_some_and(|(d, vr)| c == d && glob_match(rest, vr)),
    }
}

/// A request being matched against the queue.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Site handling it.
    pub site: Site,
    /// Operation.
    pub op: OpKind,
    /// Database.
    pub db: &'a str,
    /// Table (may be empty).
    pub table: &'a str,
    /// Label (may be empty).
    pub label: &'a str,
}

/// The queue.
#[derive(Debug, Default)]
pub struct Faults {
    queue: Vec<(u64, FaultSpec)>,
    next_id: u64,
}

impl Faults {
    /// Appends faults; returns their ids.
    pub fn push(&mut self, specs: Vec<FaultSpec>) -> Vec<u64> {
        specs
            .into_iter()
            .map(|s| {
                self.next_id += 1;
                self.queue.push((self.next_id, s));
                self.next_id
            })
            .collect()
    }

    /// Takes one application of the fault that applies to this request.
    ///
    /// Order is global: a request that passes through the FE and then the BE meets
    /// the queue's first fault matching its operation and scope, at that fault's site.
    /// So the FE takes the first matching fault only if it is an FE fault (an earlier
    /// BE fault is left for the BE), and the BE takes the first matching BE fault
    /// (skipping FE faults, which a client talking to the BE directly never meets).
    pub fn take(&mut self, t: Target<'_>) -> Option<FaultKind> {
        let matches = |f: &FaultSpec| {
            f.ops().contains(&t.op)
                && glob(&f.db, t.db)
                && glob(&f.table, t.table)
                && glob(&f.label, t.label)
        };
        let pos = match t.site {
            Site::Fe => {
                let p = self.queue.iter().position(|(_, f)| matches(f))?;
                if self.queue.get(p)?.1.site() != Site::Fe {
                    return None;
                }
                p
            }
            Site::Be => self
                .queue
                .iter()
                .position(|(_, f)| f.site() == Site::Be && matches(f))?,
        };
        let (_, f) = self.queue.get_mut(pos)?;
        let kind = f.kind.clone();
        f.count -= 1;
        if f.count == 0 {
            self.queue.remove(pos);
        }
        Some(kind)
    }

    /// The queue, for `GET /faults`.
    pub fn list(&self) -> Vec<(u64, FaultSpec)> {
        self.queue.clone()
    }

    /// Empties the queue.
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        sonic_rs::from_str(json).expect("spec")
    }

    #[test]
    fn fifo_with_counts_and_scopes() {
        let mut q = Faults::default();
        q.push(vec![
            spec(r#"{"kind":"http_status","status":503,"count":2,"table":"ord*"}"#),
            spec(r#"{"kind":"lost_response"}"#),
        ]);
        let t = |table| Target {
            site: Site::Be,
            op: OpKind::StreamLoad,
            db: "d",
            table,
            label: "l",
        };
        assert!(matches!(q.take(t("users")), Some(FaultKind::LostResponse)));
        assert!(matches!(
            q.take(t("orders")),
            Some(FaultKind::HttpStatus { status: 503, .. })
        ));
        assert!(matches!(
            q.take(t("orders")),
            Some(FaultKind::HttpStatus { .. })
        ));
        assert_eq!(q.take(t("orders")), None);
        assert!(q.list().is_empty());
        // Global order across sites: an FE fault behind a BE fault waits its turn.
        q.push(vec![
            spec(r#"{"kind":"lost_response"}"#),
            spec(r#"{"kind":"fe_error","message":"x"}"#),
        ]);
        let fe = Target {
            site: Site::Fe,
            ..t("t")
        };
        assert_eq!(q.take(fe), None);
        assert!(matches!(q.take(t("t")), Some(FaultKind::LostResponse)));
        assert!(matches!(q.take(fe), Some(FaultKind::FeError { .. })));
    }

    #[test]
    fn validation() {
        assert!(spec(r#"{"kind":"publish_timeout","ops":["txn_commit"]}"#)
            .validate()
            .is_err());
        assert!(
            spec(r#"{"kind":"label_already_exists","existing_job_status":"DONE"}"#)
                .validate()
                .is_err()
        );
        assert!(
            spec(r#"{"kind":"http_status","status":500,"ops":["get_load_state"]}"#)
                .validate()
                .is_err()
        );
        assert!(
            spec(r#"{"kind":"http_status","status":500,"at":"fe","ops":["get_load_state"]}"#)
                .validate()
                .is_ok()
        );
        assert!(
            spec(r#"{"kind":"drop_mid_body","after_bytes":3,"ops":["txn_load"]}"#)
                .validate()
                .is_ok()
        );
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(!glob_match(b"a*c", b"abbb"));
    }
}
