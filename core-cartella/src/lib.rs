//! core-cartella: the one record per person of SIGeSS. Domain rules (pure), the store
//! (SQLite or PostgreSQL), tenancy and audit, the outbox-fed change feed, and the tonic
//! services of `cartella.v1`.

pub mod auth;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod error;
pub mod import;
pub mod linkage;
pub mod private_fs;
pub mod record;
pub mod server;
pub mod service;
pub mod stats;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{CoreError, Result};
