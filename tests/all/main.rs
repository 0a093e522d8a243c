//! Cairn's end-to-end tests, one binary (built as the `cairn` package's integration test, so
//! cargo builds the `cairn` binary the CLI tests run). The fixture plugins are built by the
//! `cairn-tests` crate's build script. Modules by subject.

mod admin;
mod backends_cli;
mod bindings;
mod c_golden;
mod checkpoint_damage;
mod checkpoint_failures;
mod checkpoint_formats;
mod checkpoint_props;
mod cluster;
mod component_cache;
mod embedding;
mod exactly_once;
mod languages;
mod library_and_cli;
mod memory;
mod migration;
mod operability;
mod operators;
mod parallel;
mod pipelines;
mod s3;
mod sandbox;
mod sdks;
mod state_cache;
mod store_conformance;
mod streams;
mod timers;
mod ttl;
mod upgrades;
