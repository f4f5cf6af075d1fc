//! `starrocks-emulator`: runs the emulator as a process.
//!
//! On start it prints one JSON line to stdout, e.g.
//! `{"ready":true,"fe_port":8030,"be_port":8040,"admin_port":8050}`, then serves
//! until SIGINT or SIGTERM.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use clap::Parser;
use starrocks_emulator::{install_version_audit, mariadb_pool, Emulator, EmulatorConfig};

#[derive(Debug, Parser)]
#[command(
    name = "starrocks-emulator",
    about = "StarRocks Stream Load emulator backed by MariaDB"
)]
struct Cli {
    /// MariaDB URL, e.g. mysql://root@127.0.0.1:3306/
    #[arg(long, env = "EMULATOR_MARIADB_URL")]
    mariadb_url: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// FE HTTP port (0: any free port).
    #[arg(long, default_value_t = 0)]
    fe_port: u16,
    /// BE HTTP port (0: any free port).
    #[arg(long, default_value_t = 0)]
    be_port: u16,
    /// Admin port for fault injection and stats (0: any free port).
    #[arg(long, default_value_t = 0)]
    admin_port: u16,
    /// Accepted user as name:password (repeatable; default root with no password).
    #[arg(long = "user", value_parser = parse_user)]
    users: Vec<(String, String)>,
    /// Validate and count rows without storing them (benchmarks).
    #[arg(long)]
    discard: bool,
    /// Bookkeeping database.
    #[arg(long, default_value = "__emulator")]
    meta_database: String,
    /// Install the version audit: db.table:version_column (repeatable).
    #[arg(long = "audit", value_parser = parse_audit)]
    audits: Vec<(String, String, String)>,
    /// label_keep_max_second.
    #[arg(long, default_value_t = 259_200)]
    label_keep_seconds: u64,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    let (u, p) = s
        .split_once(':')
        .ok_or_else(|| format!("--user expects name:password, got '{s}'"))?;
    if u.is_empty() {
        return Err("--user needs a non-empty name".into());
    }
    Ok((u.to_owned(), p.to_owned()))
}

fn parse_audit(s: &str) -> Result<(String, String, String), String> {
    let err = || format!("--audit expects db.table:version_column, got '{s}'");
    let (dt, col) = s.split_once(':').ok_or_else(err)?;
    let (db, table) = dt.split_once('.').ok_or_else(err)?;
    if db.is_empty() || table.is_empty() || col.is_empty() {
        return Err(err());
    }
    Ok((db.to_owned(), table.to_owned(), col.to_owned()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut cfg = EmulatorConfig::new(cli.mariadb_url.clone());
    cfg.fe_addr = SocketAddr::new(cli.host, cli.fe_port);
    cfg.be_addr = SocketAddr::new(cli.host, cli.be_port);
    cfg.admin_addr = SocketAddr::new(cli.host, cli.admin_port);
    cfg.users = cli.users;
    cfg.discard = cli.discard;
    cfg.meta_database = cli.meta_database.clone();
    cfg.label_keep_s = cli.label_keep_seconds;
    if !cli.audits.is_empty() {
        let pool = mariadb_pool(&cli.mariadb_url)?;
        for (db, table, col) in &cli.audits {
            install_version_audit(&pool, &cli.meta_database, db, table, col)
                .await
                .with_context(|| format!("installing the version audit on {db}.{table}"))?;
        }
        pool.disconnect().await.ok();
    }
    let emu = Emulator::start(cfg)
        .await
        .context("starting the emulator")?;
    println!(
        "{{\"ready\":true,\"fe_port\":{},\"be_port\":{},\"admin_port\":{},\"fe_url\":\"{}\"}}",
        emu.fe_port(),
        emu.be_port(),
        emu.admin_port(),
        emu.fe_url()
    );
    use std::io::Write;
    std::io::stdout().flush().ok();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    emu.shutdown().await;
    Ok(())
}
