//! Black-box tests: each starts the real `glow` binary on an ephemeral port
//! with its own temp dir and catalog, and drives it with real clients
//! (reqwest, curl, raw TCP, the `glow` CLI). Tests marked with `on_both!`
//! run once against SQLite and once against PostgreSQL.

#[macro_use]
mod fixtures;
mod auth;
mod browser;
mod cast;
mod cli;
mod crash;
mod disk;
mod dlna;
mod files;
mod hostile;
mod lan;
mod load;
pub(crate) mod nat;
mod natlab;
mod overlay;
mod pairing;
mod security;
mod sftp;
mod share;
mod sshfs;
mod sync;
mod traversal;
mod versions;
mod web;
mod webdav;
