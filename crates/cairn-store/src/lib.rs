//! Storage for Cairn: the [`SqlStore`] implements `cairn_core::TrackingStore` on SQLite (the
//! embedded default, WAL mode) and on PostgreSQL; [`LocalArtifactStore`] keeps artifact
//! bytes in a folder with atomic writes, [`ObjectArtifactStore`] in an S3-compatible bucket.
//!
//! Both SQL dialects share one implementation of the store logic ([`SqlStore`]) over a narrow
//! internal transaction trait; what differs (connections, placeholders, DDL) stays in
//! `sqlite.rs`, `postgres.rs` and the per-dialect migration files.
#![deny(missing_docs)]

mod artifacts;
mod auth;
mod datasets;
mod db;
mod evaluation;
mod features;
mod monitoring;
mod object_artifacts;
mod pool;
mod postgres;
mod redis_online;
mod registry;
mod sqlite;
mod traces;
mod tracking;

pub use artifacts::LocalArtifactStore;
pub use object_artifacts::{
    ObjectArtifactStore, PART as OBJECT_PART_BYTES, RANGE as OBJECT_RANGE_BYTES,
};
pub use redis_online::RedisOnlineStore;
pub use tracking::SqlStore;

/// Opens the store a backend URI names: `sqlite:///path/to/file.db` (or `sqlite://:memory:`)
/// or `postgresql://user@host:port/db` (`postgres://` and `postgresql+driver://` too).
pub fn open_tracking_store(uri: &str) -> cairn_core::Result<SqlStore> {
    SqlStore::open(uri)
}
