//! Starting a logical replication stream on an authenticated
//! [`ReplicationConnection`]: `IDENTIFY_SYSTEM`, the server version and
//! `wal_level`, the slot (a pgoutput logical slot of this database whose WAL is not
//! lost) and the publication, then `START_REPLICATION SLOT … LOGICAL` with the
//! options the server supports.

use bytes::BytesMut;
use postgres_protocol::message::frontend;

use super::config::{proto_version_for, ServerInfo, SourceConfig, Streaming};
use super::connection::ReplicationConnection;
use super::error::{ServerError, SourceError};
use crate::lsn::Lsn;
use crate::postgres::slot::{self, SlotRow};
use crate::postgres::sql::{quote_ident, quote_literal};

impl ReplicationConnection {
    /// Checks the server, slot and publication, then starts streaming from `start`.
    pub async fn start_replication(
        &mut self,
        config: &SourceConfig,
        start: Lsn,
    ) -> Result<ServerInfo, SourceError> {
        let ident = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = ident
            .into_iter()
            .next()
            .ok_or_else(|| SourceError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let system_id = col(0);
        let timeline = col(1).parse().unwrap_or(0);
        let xlogpos = col(2).parse().unwrap_or(Lsn::ZERO);
        let version: u32 = self
            .show("server_version_num")
            .await?
            .parse()
            .map_err(|_| SourceError::Protocol("server_version_num is not a number".into()))?;
        if version < 130000 {
            return Err(SourceError::Unsupported {
                version,
                detail: "dbmazz needs PostgreSQL 13 or newer".into(),
            });
        }
        let wal_level = self.show("wal_level").await?;
        if wal_level != "logical" {
            return Err(SourceError::WalLevel { found: wal_level });
        }
        let proto = proto_version_for(version);
        if config.streaming == Streaming::On && proto < 2 {
            return Err(SourceError::Unsupported {
                version,
                detail: "streaming of in-progress transactions needs PostgreSQL 14; set streaming \
                         off"
                .into(),
            });
        }
        if config.messages && version < 140000 {
            return Err(SourceError::Unsupported {
                version,
                detail: "logical decoding messages need PostgreSQL 14; turn messages off".into(),
            });
        }
        if config.two_phase && proto < 3 {
            return Err(SourceError::Unsupported {
                version,
                detail: "two-phase decoding needs PostgreSQL 15; turn two_phase off".into(),
            });
        }
        self.check_slot().await?;
        self.check_publication().await?;

        let mut opts = vec![
            format!("proto_version '{proto}'"),
            format!(
                "publication_names {}",
                quote_literal(&quote_ident(&config.publication))
            ),
        ];
        if version >= 140000 {
            opts.push(format!("messages '{}'", on_off(config.messages)));
        }
        if proto >= 2 {
            opts.push(format!(
                "streaming '{}'",
                on_off(config.streaming == Streaming::On)
            ));
        }
        if proto >= 3 {
            opts.push(format!("two_phase '{}'", on_off(config.two_phase)));
        }
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} ({})",
            quote_ident(&config.slot),
            start,
            opts.join(", ")
        );
        let mut buf = BytesMut::new();
        frontend::query(&sql, &mut buf)?;
        self.write(&buf).await?;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'W' => break,
                b'N' | b'S' => {}
                b'E' => return Err(self.server_err(ServerError::parse(&body))),
                other => {
                    return Err(SourceError::Protocol(format!(
                        "unexpected message '{}' in reply to START_REPLICATION",
                        other as char
                    )))
                }
            }
        }
        Ok(ServerInfo {
            system_id,
            timeline,
            xlogpos,
            server_version_num: version,
            proto_version: proto,
            database: self.params.dbname.clone(),
        })
    }

    async fn check_slot(&mut self) -> Result<(), SourceError> {
        let rows = self.simple_query(&slot::query_for(&self.slot)).await?;
        let Some(row) = rows.into_iter().next() else {
            return Err(SourceError::SlotMissing {
                slot: self.slot.clone(),
                database: self.params.dbname.clone(),
            });
        };
        let row = SlotRow::from_text(&row).map_err(|e| SourceError::Protocol(e.to_string()))?;
        let unusable = |detail: String| SourceError::SlotUnusable {
            slot: self.slot.clone(),
            detail,
        };
        if row.slot_type.as_deref() != Some("logical") {
            return Err(unusable(
                "it is a physical slot; create a logical slot with the pgoutput plugin".into(),
            ));
        }
        if row.plugin.as_deref() != Some("pgoutput") {
            return Err(unusable(format!(
                "it uses output plugin '{}'; dbmazz needs a slot created with 'pgoutput'",
                row.plugin.unwrap_or_default()
            )));
        }
        if row.database.as_deref() != Some(self.params.dbname.as_str()) {
            return Err(unusable(format!(
                "it belongs to database '{}', not '{}'; connect to that database or create a \
                 slot in this one",
                row.database.unwrap_or_default(),
                self.params.dbname
            )));
        }
        if row.wal_status.as_deref() == Some("lost") {
            return Err(SourceError::SlotInvalidated {
                slot: self.slot.clone(),
                detail: "pg_replication_slots.wal_status is 'lost'".into(),
            });
        }
        Ok(())
    }

    async fn check_publication(&mut self) -> Result<(), SourceError> {
        let rows = self
            .simple_query(&format!(
                "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = {}",
                quote_literal(&self.publication)
            ))
            .await?;
        if rows.is_empty() {
            return Err(SourceError::PublicationMissing {
                publication: self.publication.clone(),
                database: self.params.dbname.clone(),
            });
        }
        Ok(())
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}
