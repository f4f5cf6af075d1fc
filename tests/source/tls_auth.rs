//! TLS (every sslmode against a real server with a throw-away CA) and password
//! authentication (SCRAM-SHA-256, md5) of the replication connection.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{read_until, until_commits, Fixture};
use dbmazz::source::{SourceError, SourceStream};
use dbmazz_testkit::postgres::PgAuth;
use dbmazz_testkit::PgConfig;

struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    server: (PathBuf, PathBuf),
    wrong_name: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=dbmazz test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn make_server(dir: &Path, name: &str, san: &str) {
    make_leaf(
        dir,
        name,
        "postgres",
        &format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    );
}

/// A client certificate for the `postgres` role (`cert` authentication maps the CN).
fn make_client(dir: &Path, name: &str) {
    make_leaf(
        dir,
        name,
        "postgres",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
}

fn make_leaf(dir: &Path, name: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn certs() -> Certs {
    let dir = tempfile::Builder::new()
        .prefix("dbmazz-tls-")
        .tempdir()
        .expect("tempdir");
    let p = dir.path();
    make_ca(p, "ca");
    make_ca(p, "other");
    make_server(p, "server", "IP:127.0.0.1,DNS:localhost");
    make_server(p, "wrongname", "DNS:db.invalid");
    make_client(p, "client");
    // PostgreSQL runs as the postgres user and insists its key is private to it.
    for key in ["server.key", "wrongname.key", "client.key"] {
        let path = p.join(key);
        let status = Command::new("chmod")
            .arg("600")
            .arg(&path)
            .status()
            .expect("chmod");
        assert!(status.success());
    }
    if let Some((uid, gid)) =
        dbmazz_testkit::process::user_ids("postgres").filter(|_| dbmazz_testkit::process::is_root())
    {
        dbmazz_testkit::process::chown_tree(p, uid, gid).expect("chown");
    }
    Certs {
        ca: p.join("ca.pem"),
        other_ca: p.join("other.pem"),
        server: (p.join("server.crt"), p.join("server.key")),
        wrong_name: (p.join("wrongname.crt"), p.join("wrongname.key")),
        client: (p.join("client.crt"), p.join("client.key")),
        _dir: dir,
    }
}

fn tls_config(cert: &(PathBuf, PathBuf), auth: PgAuth) -> PgConfig {
    PgConfig::default()
        .setting("ssl", "on")
        .setting("ssl_cert_file", &cert.0.display().to_string())
        .setting("ssl_key_file", &cert.1.display().to_string())
        .auth(auth)
}

fn url(fx: &Fixture, query: &str) -> String {
    format!("{}?{query}", fx.pg.url("postgres"))
}

async fn streams(fx: &Fixture, url: String) -> Result<(), SourceError> {
    let mut cfg = fx.config();
    cfg.url = url.into();
    let mut stream = SourceStream::start(cfg).await?;
    fx.sql("INSERT INTO t VALUES (DEFAULT)");
    read_until(&mut stream, 20, until_commits(1)).await;
    stream.shutdown().await;
    Ok(())
}

const SCHEMA: &str = "CREATE TABLE t (id serial PRIMARY KEY)";

#[tokio::test]
async fn tls_modes_against_a_real_server() {
    let c = certs();
    let fx = Fixture::new(
        tls_config(&c.server, PgAuth::Scram("s3cret pw".into())),
        SCHEMA,
        false,
    );
    let ca = c.ca.display().to_string();
    // verify-full with the right CA, over SCRAM: works.
    streams(
        &fx,
        url(&fx, &format!("sslmode=verify-full&sslrootcert={ca}")),
    )
    .await
    .expect("verify-full");
    streams(
        &fx,
        url(&fx, &format!("sslmode=verify-ca&sslrootcert={ca}")),
    )
    .await
    .expect("verify-ca");
    streams(&fx, url(&fx, "sslmode=require"))
        .await
        .expect("require");
    streams(&fx, url(&fx, "sslmode=prefer"))
        .await
        .expect("prefer");
    // A CA that did not sign the server certificate.
    let other = c.other_ca.display().to_string();
    let e = streams(
        &fx,
        url(&fx, &format!("sslmode=verify-ca&sslrootcert={other}")),
    )
    .await
    .expect_err("untrusted CA");
    assert!(matches!(e, SourceError::Tls(_)), "{e}");
    assert!(!e.is_transient());
    // `system` means the machine's trust store (which does not hold the test CA), not
    // a file named "system".
    let e = streams(&fx, url(&fx, "sslmode=verify-full&sslrootcert=system"))
        .await
        .expect_err("test CA is not a system root");
    assert!(matches!(e, SourceError::Tls(_)), "{e}");
    assert!(!e.to_string().contains("cannot read"), "{e}");
    // verify modes without a CA file say what to set.
    let e = streams(&fx, url(&fx, "sslmode=verify-full"))
        .await
        .expect_err("no CA");
    assert!(e.to_string().contains("sslrootcert"), "{e}");
}

#[tokio::test]
async fn client_certificate_authentication() {
    let c = certs();
    let ca = c.ca.display().to_string();
    let fx = Fixture::new(
        tls_config(&c.server, PgAuth::Cert).setting("ssl_ca_file", &ca),
        SCHEMA,
        false,
    );
    let (cert, key) = (c.client.0.display(), c.client.1.display());
    let with_cert = format!("sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}");
    // Replication connection and ordinary SQL connection both present it.
    streams(&fx, url(&fx, &with_cert))
        .await
        .expect("replication with a client certificate");
    let sql = dbmazz::postgres::connect(&url(&fx, &with_cert).into())
        .await
        .expect("SQL with a client certificate");
    let one: i32 = sql.query_one("SELECT 1", &[]).await.expect("query").get(0);
    assert_eq!(one, 1);
    // Without it the server refuses, and says why.
    let e = streams(
        &fx,
        url(&fx, &format!("sslmode=verify-full&sslrootcert={ca}")),
    )
    .await
    .expect_err("no client certificate");
    assert!(e.to_string().contains("certificate"), "{e}");
    // Half an identity is a configuration error before any connection.
    let e = streams(&fx, url(&fx, &format!("sslmode=require&sslcert={cert}")))
        .await
        .expect_err("cert without key");
    assert!(matches!(e, SourceError::Tls(_)), "{e}");
    assert!(e.to_string().contains("without sslkey"), "{e}");
    let e = streams(
        &fx,
        url(&fx, &format!("sslmode=require&sslcert={ca}&sslkey={ca}")),
    )
    .await
    .expect_err("a certificate is not a key");
    assert!(e.to_string().contains("sslkey"), "{e}");
}

#[tokio::test]
async fn verify_full_checks_the_host_name() {
    let c = certs();
    let fx = Fixture::new(tls_config(&c.wrong_name, PgAuth::Trust), SCHEMA, false);
    let ca = c.ca.display().to_string();
    streams(
        &fx,
        url(&fx, &format!("sslmode=verify-ca&sslrootcert={ca}")),
    )
    .await
    .expect("verify-ca ignores the name");
    let e = streams(
        &fx,
        url(&fx, &format!("sslmode=verify-full&sslrootcert={ca}")),
    )
    .await
    .expect_err("name mismatch");
    assert!(matches!(e, SourceError::Tls(_)), "{e}");
}

#[tokio::test]
async fn sslmode_require_fails_without_server_tls() {
    let fx = Fixture::new(PgConfig::default(), SCHEMA, false);
    let e = streams(&fx, url(&fx, "sslmode=require"))
        .await
        .expect_err("no TLS");
    assert!(matches!(e, SourceError::Tls(_)), "{e}");
    streams(&fx, url(&fx, "sslmode=disable"))
        .await
        .expect("disable");
}

#[tokio::test]
async fn scram_and_md5_passwords() {
    for auth in [
        PgAuth::Scram("right 'pw'".into()),
        PgAuth::Md5("md5-pw".into()),
    ] {
        let fx = Fixture::new(PgConfig::default().auth(auth.clone()), SCHEMA, false);
        streams(&fx, fx.pg.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        // Key/value form with a quoted password.
        let mut cfg = fx.config();
        cfg.url = fx.pg.conn_string("postgres").into();
        SourceStream::start(cfg)
            .await
            .expect("key/value")
            .shutdown()
            .await;
        let wrong = format!(
            "postgres://postgres:wrong@127.0.0.1:{}/postgres",
            fx.pg.port()
        );
        let e = streams(&fx, wrong).await.expect_err("wrong password");
        assert!(matches!(e, SourceError::Auth { .. }), "{auth:?}: {e}");
        assert!(!e.is_transient());
        let none = format!("postgres://postgres@127.0.0.1:{}/postgres", fx.pg.port());
        let e = streams(&fx, none).await.expect_err("no password");
        assert!(e.to_string().contains("has none"), "{e}");
    }
}
