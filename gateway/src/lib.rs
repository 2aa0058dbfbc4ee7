//! gateway: the only door from outside to core. It authenticates callers (hub tokens,
//! OAuth2 client credentials, PDND vouchers with ModI signatures, mTLS, operator sessions),
//! translates REST/JSON to `cartella.v1` gRPC, forwards gRPC, and mints the short-lived
//! caller token core verifies on every call.

pub mod adapters;
pub mod app;
pub mod auth;
pub mod console;
pub mod core_link;
pub mod delivery;
pub mod dimissioni;
pub mod edge_store;
pub mod grpc_ingress;
pub mod http;
pub mod problem;
pub mod rest;
pub mod setup;
pub mod siuss_config;
pub mod siuss_export;
pub mod stack;
pub mod tls;
pub mod waas;
