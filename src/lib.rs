//! aisle: a conversational shopping assistant.
//!
//! The crate is split by domain (see ARCHITECTURE.md): `catalog` owns products, customers and orders;
//! `ranking` owns retrieval; `db` owns the pool and the embedded Postgres cluster; `web` is the only
//! module that knows about HTTP; `cli` wires commands together for the thin `main.rs`.

pub mod auth;
pub mod catalog;
pub mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod embed;
pub mod graph;
pub mod intent;
pub mod llm;
pub mod modelfile;
pub mod ranking;
pub mod state;
pub mod support;
pub mod telemetry;
pub mod web;
