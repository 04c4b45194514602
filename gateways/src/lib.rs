//! Glow's protocol fronts. Each front translates one wire protocol into
//! [`fabric::Fabric`] calls and maps [`fabric::FabricError`] back onto the
//! protocol's own errors, once, in its `error` module. Fronts never touch the
//! disk or the catalog themselves.

pub mod dlna;
pub mod http;
pub mod sftp;
pub mod webdav;
pub mod xml;

#[cfg(test)]
mod testing;
