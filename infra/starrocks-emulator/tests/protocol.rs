//! The HTTP protocol as a client sees it: redirect and re-authentication, Expect:
//! 100-continue, connection handling, both response shapes.

mod common;

use common::serde_json_like::JsonValueTrait;
use common::{follow, send, Env, Req};

const TABLE: &str = "CREATE TABLE sink.t (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(20) NULL)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fe_redirects_to_be_and_be_rechecks_auth() {
    let env = Env::start().await;
    env.sql(TABLE).await;
    let url = format!("{}/api/sink/t/_stream_load", env.emu().fe_url());
    let body = br#"{"id":1,"v":"a"}"#;
    let req = Req::new("PUT", &url)
        .auth("bob", "secret")
        .header("format", "json")
        .header("label", "redir1")
        .body(body)
        .expect_continue();
    // The FE answers 307 instead of 100 Continue: the body never goes to the FE.
    let r = send(&req).await.expect("fe");
    assert_eq!(r.status, 307);
    assert!(!r.got_continue && !r.body_sent);
    assert!(
        r.closed_after,
        "the FE closes the connection after each response"
    );
    let loc = r.header("location").expect("Location").to_owned();
    assert_eq!(
        loc,
        format!("{}/api/sink/t/_stream_load", env.emu().be_url())
    );
    assert!(!loc.contains('@'), "no credentials in the Location");

    // Following without re-sending Authorization: HTTP 200 + Fail, before the body.
    let mut no_auth = req.clone();
    no_auth.headers.retain(|(k, _)| k != "Authorization");
    no_auth.url = loc.clone();
    let r = send(&no_auth).await.expect("be");
    assert_eq!(r.status, 200);
    assert_eq!(r.status_field(), "Fail");
    assert_eq!(
        r.json()["Message"].as_str(),
        Some("no valid Basic authorization")
    );
    assert!(!r.body_sent, "rejected before the body");

    // Wrong password on the BE: Fail too.
    let mut bad = Req::new("PUT", &loc)
        .auth("bob", "nope")
        .header("format", "json")
        .body(body)
        .expect_continue();
    bad.headers.push(("label".into(), "redir1".into()));
    let r = send(&bad).await.expect("be");
    assert_eq!(r.status_field(), "Fail");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap_or("")
        .contains("Access denied"));

    // Re-sending credentials: the BE sends 100 Continue, reads the body, loads.
    let mut ok = req.clone();
    ok.url = loc;
    let r = send(&ok).await.expect("be");
    assert!(r.got_continue && r.body_sent);
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(env.rows("SELECT id, v FROM sink.t").await, vec!["1\ta"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fe_auth_and_expect_errors() {
    let env = Env::start().await;
    env.sql(TABLE).await;
    let url = format!("{}/api/sink/t/_stream_load", env.emu().fe_url());
    let body = br#"{"id":1}"#;
    // No credentials: 401 with WWW-Authenticate, body never read.
    let r = send(&Req::new("PUT", &url).body(body).expect_continue())
        .await
        .expect("fe");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"\""));
    assert!(!r.body_sent && !r.got_continue);
    assert_eq!(r.json()["status"].as_str(), Some("FAILED"));
    // Bad password: 401.
    let r = send(
        &Req::new("PUT", &url)
            .auth("bob", "x")
            .body(body)
            .expect_continue(),
    )
    .await
    .expect("fe");
    assert_eq!(r.status, 401);
    // HTTP/1.1 without Expect: the FE's lower-case RestBaseResult error, then close.
    let r = send(&Req::new("PUT", &url).auth("root", "").body(body))
        .await
        .expect("fe");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"].as_str(), Some("FAILED"));
    assert_eq!(v["code"].as_str(), Some("1"));
    assert_eq!(v["msg"].as_str(), Some("There is no 100-continue header"));
    assert!(r.closed_after);
    // HTTP/1.0 skips the Expect check.
    let mut old = Req::new("PUT", &url).auth("root", "").body(body);
    old.http10 = true;
    let r = send(&old).await.expect("fe");
    assert_eq!(r.status, 307);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn be_rejects_invalid_requests_before_the_body() {
    let env = Env::start().await;
    env.sql(TABLE).await;
    let be = env.emu().be_url();
    let body = vec![b' '; 4096];
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            format!("{be}/api/sink/nope/_stream_load"),
            vec![],
            "unknown table",
        ),
        (
            format!("{be}/api/nodb/t/_stream_load"),
            vec![],
            "unknown database",
        ),
        (
            format!("{be}/api/sink/t/_stream_load"),
            vec![("format", "xml")],
            "unknown data format",
        ),
        (
            format!("{be}/api/sink/t/_stream_load"),
            vec![("timeout", "soon")],
            "Invalid timeout format",
        ),
        (
            format!("{be}/api/sink/t/_stream_load"),
            vec![("label", "bad label")],
            "Label format error",
        ),
        (
            format!("{be}/api/sink/t/_stream_load"),
            vec![("strict_mode", "maybe")],
            "Invalid strict mode format",
        ),
        (
            format!("{be}/api/sink/t/_stream_load"),
            vec![("columns", "id,zzz=v*2")],
            "column",
        ),
        (
            format!("{be}/api/sink/t/_stream_load"),
            vec![("partial_update", "yes")],
            "partial update",
        ),
        (
            format!("{be}/api/sink/t/_stream_load"),
            vec![("merge_condition", "id")],
            "primary key",
        ),
    ];
    for (url, headers, expect) in cases {
        let mut req = Req::new("PUT", &url)
            .auth("root", "")
            .body(&body)
            .expect_continue();
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let r = send(&req).await.expect("be");
        assert_eq!(r.status, 200);
        assert_eq!(r.status_field(), "Fail", "{url} {headers:?}: {}", r.body);
        let msg = r.json()["Message"].as_str().unwrap_or("").to_owned();
        assert!(msg.contains(expect), "{headers:?}: {msg}");
        assert!(
            !r.got_continue && !r.body_sent,
            "{headers:?}: rejected before 100 Continue"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_and_response_shape() {
    let env = Env::start().await;
    env.sql(TABLE).await;
    let url = format!("{}/api/sink/t/_stream_load", env.emu().fe_url());
    let body = br#"[{"id":1,"v":"x"},{"id":2,"v":"y"},{"id":3,"v":null}]"#;
    let r = follow(
        Req::new("PUT", &url)
            .auth("root", "")
            .header("format", "json")
            .header("strip_outer_array", "true")
            .header("label", "chunky")
            .body(body)
            .chunked()
            .expect_continue(),
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    let keys: Vec<String> = r
        .body
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')
                .and_then(|x| x.split('"').next())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        keys,
        [
            "TxnId",
            "Label",
            "Status",
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
            "CommitAndPublishTimeMs"
        ]
    );
    let v = r.json();
    assert_eq!(v["Message"].as_str(), Some("OK"));
    assert_eq!(v["NumberLoadedRows"].as_u64(), Some(3));
    assert_eq!(v["LoadBytes"].as_u64(), Some(body.len() as u64));
    assert!(v["TxnId"].as_i64().unwrap_or(0) > 0);
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.t").await, vec!["3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcurl_client_with_location_trusted() {
    let env = Env::start().await;
    env.sql(TABLE).await;
    let url = format!("{}/api/sink/t/_stream_load", env.emu().fe_url());
    let out = tokio::task::spawn_blocking(move || {
        let mut easy = curl::easy::Easy::new();
        easy.url(&url).expect("url");
        easy.upload(true).expect("put");
        easy.follow_location(true).expect("follow");
        easy.unrestricted_auth(true).expect("location-trusted");
        easy.username("bob").expect("user");
        easy.password("secret").expect("pw");
        let mut list = curl::easy::List::new();
        for h in [
            "Expect: 100-continue",
            "format: json",
            "label: curl1",
            "strip_outer_array: true",
        ] {
            list.append(h).expect("header");
        }
        easy.http_headers(list).expect("headers");
        let data = br#"[{"id":7,"v":"curl"}]"#.to_vec();
        easy.in_filesize(data.len() as u64).expect("size");
        let mut src = &data[..];
        let mut resp = Vec::new();
        {
            let mut t = easy.transfer();
            t.read_function(|buf| Ok(std::io::Read::read(&mut src, buf).unwrap_or(0)))
                .expect("read");
            t.write_function(|d| {
                resp.extend_from_slice(d);
                Ok(d.len())
            })
            .expect("write");
            t.perform().expect("perform");
        }
        (
            easy.response_code().expect("code"),
            String::from_utf8_lossy(&resp).into_owned(),
        )
    })
    .await
    .expect("join");
    assert_eq!(out.0, 200, "{}", out.1);
    assert!(out.1.contains("\"Status\": \"Success\""), "{}", out.1);
    assert_eq!(
        env.rows("SELECT v FROM sink.t WHERE id = 7").await,
        vec!["curl"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_load_state_and_cancel() {
    let env = Env::start().await;
    env.sql(TABLE).await;
    assert_eq!(env.label_state("never").await, "UNKNOWN");
    let r = env
        .load("t", &[("format", "json"), ("label", "st1")], r#"{"id":1}"#)
        .await;
    assert_eq!(r.status_field(), "Success");
    assert_eq!(env.label_state("st1").await, "VISIBLE");
    // get_load_state requires auth.
    let url = format!("{}/api/sink/get_load_state?label=st1", env.emu().fe_url());
    assert_eq!(send(&Req::new("GET", &url)).await.expect("s").status, 401);
    // Cancel a PREPARE transaction (SDK form: /api/{db}/{table}/_cancel?label=).
    let r = env.txn("begin", "c1", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    let cancel = format!("{}/api/sink/t/_cancel?label=c1", env.emu().fe_url());
    let r = send(&Req::new("POST", &cancel).auth("root", ""))
        .await
        .expect("cancel");
    assert_eq!(r.json()["status"].as_str(), Some("OK"), "{}", r.body);
    assert_eq!(env.label_state("c1").await, "ABORTED");
    // Cancelling a finished load fails.
    let cancel = format!("{}/api/sink/st1/_cancel", env.emu().fe_url());
    let r = send(&Req::new("POST", &cancel).auth("root", ""))
        .await
        .expect("cancel");
    assert_eq!(r.json()["status"].as_str(), Some("FAILED"), "{}", r.body);
}
