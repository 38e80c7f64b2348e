//! A throwaway primary with a streaming standby, for the tests of multi-host URLs, read replicas
//! and failover.
//!
//! The primary is a fresh [`Cluster`] (PostgreSQL's defaults already have `wal_level = replica`,
//! WAL senders, and `initdb --auth=trust` lets replication connections in from loopback); the
//! standby is a copy of it made with `pg_basebackup -R`, streaming from it. Both listen on free
//! loopback ports and are stopped when the pair is dropped.

use std::path::Path;

use anyhow::{Context, Result};

use super::cluster::{Cluster, ServerBinaries};

/// A primary and its streaming standby. Dropping it stops both.
#[derive(Debug)]
pub struct ReplicaPair {
    /// The primary (read-write).
    pub primary: Cluster,
    /// The standby (read-only, in recovery), until promoted.
    pub standby: Cluster,
}

impl ReplicaPair {
    /// Starts a primary under `<dir>/primary` and a standby of it under `<dir>/standby`.
    pub fn start(binaries: ServerBinaries, dir: &Path) -> Result<ReplicaPair> {
        let primary = Cluster::start(binaries.clone(), &dir.join("primary"))
            .context("the primary did not start")?;
        let standby = Cluster::start_standby(binaries, &dir.join("standby"), &primary)
            .context("the standby did not start")?;
        Ok(ReplicaPair { primary, standby })
    }

    /// A libpq multi-host URL naming the primary, then the standby, with `options` as its query
    /// (`target_session_attrs=read-write`).
    pub fn hosts_url(&self, options: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/test?{options}",
            self.primary.port(),
            self.standby.port()
        )
    }

    /// The same with the standby first.
    pub fn standby_first_url(&self, options: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/test?{options}",
            self.standby.port(),
            self.primary.port()
        )
    }
}
