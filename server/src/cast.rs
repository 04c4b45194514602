//! `glow cast`: find TVs and renderers on the LAN and tell one what to play.
//!
//! The renderer fetches the file from the running `glow serve` on this data
//! dir (its DLNA listener, whose address the server leaves in the data dir),
//! with a playback ticket this command issues: no sign-in on the TV.

use crate::flags::CastCommand;
use anyhow::{Context, bail};
use fabric::{Address, Fabric, Principal};
use gateways::dlna::cast::{self, Control};
use std::net::SocketAddr;
use std::time::Duration;

/// Runs one `glow cast` command.
pub async fn run(fabric: &Fabric, cmd: CastCommand) -> anyhow::Result<()> {
    match cmd {
        CastCommand::List { wait } => {
            searching(wait);
            let found = cast::discover(Duration::from_secs(wait)).await?;
            if found.is_empty() {
                println!("no renderers answered (is the TV on, and on this network?)");
            }
            for (r, _) in found {
                println!("{}\t{}\t{}\t{}", r.name, r.model, r.udn, r.location);
            }
        }
        CastCommand::Play {
            renderer,
            address,
            ttl,
            wait,
        } => {
            let addr = Address::parse(&address)?;
            let ttl = humantime::parse_duration(&ttl)
                .with_context(|| format!("--for {ttl:?} is not a duration like 3h or 1d"))?;
            let dlna = running_dlna(fabric)?;
            let device = find(&renderer, wait).await?;
            let url =
                cast::play_file(fabric, &Principal::System, &addr, &device, dlna, ttl).await?;
            println!("{} is playing {addr}", device.friendly_name());
            println!("  from {url}");
        }
        CastCommand::Pause { renderer, wait } => {
            let d = find(&renderer, wait).await?;
            cast::control(&d, Control::Pause).await?;
            println!("{} paused", d.friendly_name());
        }
        CastCommand::Resume { renderer, wait } => {
            let d = find(&renderer, wait).await?;
            cast::control(&d, Control::Resume).await?;
            println!("{} playing", d.friendly_name());
        }
        CastCommand::Stop { renderer, wait } => {
            let d = find(&renderer, wait).await?;
            cast::control(&d, Control::Stop).await?;
            println!("{} stopped", d.friendly_name());
        }
        CastCommand::Status { renderer, wait } => {
            let d = find(&renderer, wait).await?;
            let t = cast::transport(&d).await?;
            println!(
                "{}\t{}\t{}",
                d.friendly_name(),
                t.state,
                t.uri.unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn searching(wait: u64) {
    eprintln!("searching the network for renderers ({wait} s)…");
}

async fn find(renderer: &str, wait: u64) -> anyhow::Result<rupnp::Device> {
    if !renderer.starts_with("http://") {
        searching(wait);
    }
    Ok(cast::find(renderer, Duration::from_secs(wait)).await?)
}

/// The address of the DLNA listener of the server running on this data dir.
fn running_dlna(fabric: &Fabric) -> anyhow::Result<SocketAddr> {
    let path = fabric.data_dir().join(crate::serve::DLNA_ADDR_FILE);
    let hint = || {
        format!(
            "no `glow serve` with DLNA runs on the data dir {}: start one (without --no-dlna), the TV fetches the file from it",
            fabric.data_dir().display()
        )
    };
    let text = std::fs::read_to_string(&path).map_err(|_| anyhow::anyhow!(hint()))?;
    let addr: SocketAddr = text.trim().parse().map_err(|_| anyhow::anyhow!(hint()))?;
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    if std::net::TcpStream::connect_timeout(&probe, Duration::from_secs(2)).is_err() {
        bail!("{}", hint());
    }
    Ok(addr)
}
