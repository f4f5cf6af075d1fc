//! The admin port (test use only): fault injection and statistics.
//!
//! | method + path        | body / answer |
//! |----------------------|---------------|
//! | `GET /health`        | `{"ok":true}` |
//! | `POST /faults`       | a fault object or an array of them → `{"ids":[...]}` |
//! | `GET /faults`        | the queue: `[{"id":1, ...fault}]` |
//! | `DELETE /faults`     | empties the queue |
//! | `GET /stats`         | counters, rows/s, per table |
//! | `POST /stats/reset`  | zeroes the counters and empties the load log |
//! | `GET /loads`         | the most recent loads: label, table, outcome, rows, bytes, arrival and answer times |
//! | `POST /reset`        | empties the queue, zeroes the counters and empties the load log |

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;

use crate::faults::FaultSpec;
use crate::server::{respond, Resp, Shared};
use crate::stats::Stats;

fn json(status: StatusCode, body: String) -> Resp {
    respond(status, "application/json", body)
}

fn error(status: StatusCode, msg: &str) -> Resp {
    let mut s = String::from("{\"error\":");
    crate::response::push_json_str(&mut s, msg);
    s.push('}');
    json(status, s)
}

#[derive(Serialize)]
struct Listed {
    id: u64,
    #[serde(flatten)]
    spec: FaultSpec,
}

/// Handles one admin request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/health") => json(StatusCode::OK, "{\"ok\":true}".into()),
        (Method::POST, "/faults") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("reading the body failed: {e}"),
                    )
                }
            };
            let specs: Vec<FaultSpec> = match sonic_rs::from_slice::<Vec<FaultSpec>>(&body) {
                Ok(v) => v,
                Err(_) => match sonic_rs::from_slice::<FaultSpec>(&body) {
                    Ok(one) => vec![one],
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("a fault object (or an array of them) was expected: {e}"),
                        )
                    }
                },
            };
            for s in &specs {
                if let Err(m) = s.validate() {
                    return error(StatusCode::BAD_REQUEST, &m);
                }
            }
            let ids = shared.with_faults(|f| f.push(specs));
            json(
                StatusCode::OK,
                format!(
                    "{{\"ids\":[{}]}}",
                    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
                ),
            )
        }
        (Method::GET, "/faults") => {
            let list: Vec<Listed> = shared
                .with_faults(|f| f.list())
                .into_iter()
                .map(|(id, spec)| Listed { id, spec })
                .collect();
            match sonic_rs::to_string(&list) {
                Ok(s) => json(StatusCode::OK, s),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (Method::DELETE, "/faults") => {
            shared.with_faults(|f| f.clear());
            json(StatusCode::OK, "{\"ok\":true}".into())
        }
        (Method::GET, "/stats") => {
            let report = shared.with_stats(|s| s.report(shared.cfg.discard));
            match sonic_rs::to_string(&report) {
                Ok(s) => json(StatusCode::OK, s),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (Method::GET, "/loads") => {
            match shared.with_stats(|s| sonic_rs::to_string(&s.load_log())) {
                Ok(s) => json(StatusCode::OK, s),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (Method::POST, "/stats/reset") => {
            shared.with_stats(|s| *s = Stats::default());
            json(StatusCode::OK, "{\"ok\":true}".into())
        }
        (Method::POST, "/reset") => {
            shared.with_faults(|f| f.clear());
            shared.with_stats(|s| *s = Stats::default());
            json(StatusCode::OK, "{\"ok\":true}".into())
        }
        _ => error(StatusCode::NOT_FOUND, "unknown admin endpoint"),
    }
}
