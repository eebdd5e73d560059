//! Integration tests: each test starts the real server on its own database and talks to it over
//! HTTP. SQLite by default; set `TEST_DATABASE_URL=postgres://...` to run the same tests on
//! PostgreSQL (each test then gets its own schema).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod auth;
mod binary;
mod companies;
mod contacts;
mod custom_fields;
mod demo;
mod generator;
mod hostile;
mod http;
mod imports;
mod jobs;
mod journey;
mod limits;
mod operations;
mod pagination;
mod pool;
mod queries_cost;
mod schema;
mod scopes;
mod segments;
mod tenancy;
mod upsert;
mod web;
mod webhooks;
mod write_path;
