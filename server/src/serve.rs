//! `glow serve`: open the fabric, make sure there is an admin, add the given
//! directories as folders, start the fronts, print the banner, keep folders
//! in step with the disk, and shut down gracefully on Ctrl-C or SIGTERM.

use crate::config::Settings;
use crate::flags::ServeArgs;
use crate::progress::ScanProgress;
use crate::tls;
use anyhow::{Context, bail};
use fabric::{Fabric, FabricConfig, FabricError, FolderOptions};
use gateways::http::{self, ServeOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Runs a node until it is asked to stop.
pub async fn run(settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    raise_open_file_limit();
    let fabric = open_fabric(&settings, true).await?;
    // What `glow folder list` beside this server shows.
    let _ = std::fs::write(
        settings.data_dir.join(crate::config::COPIES_BUDGET_FILE),
        format!("{}\n", settings.copies_budget(true)),
    );
    let admin_name = std::env::var("GLOW_ADMIN_USER").unwrap_or_else(|_| "admin".into());
    let admin_password = ensure_admin(&fabric, &admin_name).await?;
    let dirs: Vec<PathBuf> = if args.dirs.is_empty() {
        settings.file.folders.clone().unwrap_or_default()
    } else {
        args.dirs.clone()
    };
    let dlna_addr = settings.dlna_addr(&args);
    let mut folder_lines = Vec::new();
    for dir in &dirs {
        folder_lines.push(add_dir(&fabric, &admin_name, dir, dlna_addr.is_some()).await?);
    }
    let tls_config = match (
        args.tls.clone().or_else(|| settings.file.tls.clone()),
        args.tls_cert
            .clone()
            .or_else(|| settings.file.tls_cert.clone()),
        args.tls_key
            .clone()
            .or_else(|| settings.file.tls_key.clone()),
    ) {
        (Some(mode), _, _) if mode == "self-signed" => {
            let (c, k) = tls::self_signed(fabric.data_dir())?;
            Some(tls::from_files(&c, &k)?)
        }
        (Some(mode), _, _) => {
            bail!("unknown --tls mode {mode:?}: use `self-signed`, or --tls-cert and --tls-key")
        }
        (None, Some(c), Some(k)) => Some(tls::from_files(&c, &k)?),
        (None, None, None) => None,
        _ => bail!("TLS needs both a certificate and a key (--tls-cert and --tls-key)"),
    };
    let header_timeout = match args.header_timeout.or(settings.file.header_timeout) {
        Some(0) => bail!("--header-timeout must be at least 1 second"),
        Some(secs) => Some(std::time::Duration::from_secs(secs)),
        None => None,
    };
    let http_addr = settings.http_addr(&args);
    let listener = listen(
        "--http",
        &http_addr,
        "0.0.0.0:8080",
        " (is another server using it? pick another with --http)",
    )
    .await?;
    let local = listener.local_addr()?;
    let sftp = match settings.sftp_addr(&args) {
        None => None,
        Some(text) => {
            let listener = listen(
                "--sftp",
                &text,
                "0.0.0.0:2222",
                " for SFTP (is another server using it? pick another with --sftp, or --no-sftp)",
            )
            .await?;
            let key = gateways::sftp::HostKey::load_or_create(fabric.data_dir())
                .map_err(anyhow::Error::msg)?;
            Some((listener, key))
        }
    };
    let dlna = match dlna_addr {
        None => None,
        Some(text) => {
            let hint = " for DLNA (is another media server using it? pick another with --dlna, or --no-dlna)";
            let listener = match listen("--dlna", &text, "0.0.0.0:8200", hint).await {
                Ok(l) => l,
                // TVs learn the port from SSDP, so when the default one is
                // taken (minidlna uses it too) any free port serves as well.
                Err(e) if settings.dlna_is_default(&args) => {
                    let l = listen("--dlna", "0.0.0.0:0", "0.0.0.0:8200", hint).await?;
                    tracing::warn!(
                        "{e:#}; the LAN media front took port {} instead",
                        l.local_addr()?.port()
                    );
                    l
                }
                Err(e) => return Err(e),
            };
            let opts = gateways::dlna::Options {
                uuid: dlna_uuid(fabric.data_dir())?,
                name: settings.node_name(&args),
                presentation_url: settings.file.public_url.clone(),
            };
            // Open before the banner: "Ready" means TVs can find it.
            let ssdp = gateways::dlna::bind_ssdp(&opts, listener.local_addr()?);
            Some((listener, ssdp, opts))
        }
    };
    let dlna_banner = match &dlna {
        Some((l, _, o)) => Some((l.local_addr()?, o.name.clone())),
        None => None,
    };
    let peer_name = settings.peer_name(&args);
    // The relay rides on the plain-HTTP front (a TLS front cannot hand
    // over its connections before it has read them).
    let relay_port = tls_config.is_none().then_some(local.port());
    let overlay = match settings.overlay_addr(&args) {
        None => None,
        Some(text) => {
            Some(crate::overlay::start_peers(&fabric, &text, &peer_name, relay_port).await?)
        }
    };
    // Folder sync: this node's replicas kept in step with the members'.
    let syncer = overlay
        .as_ref()
        .map(|o| sync::start(fabric.clone(), o.peers.clone()));
    let sftp_banner = match &sftp {
        Some((l, key)) => Some((l.local_addr()?, key.fingerprint())),
        None => None,
    };

    // `glow node id` shows the name the node last ran under.
    if let Err(e) = fabric.set_node_name(&peer_name) {
        tracing::warn!("cannot keep the node's name in the data dir: {e}");
    }
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    print_banner(
        &fabric,
        &settings,
        Banner {
            scheme,
            local,
            name: &peer_name,
            folders: &folder_lines,
            copies: fabric.copies_usage(None).await?,
            admin: &admin_name,
            password: &admin_password,
            sftp: sftp_banner,
            dlna: dlna_banner.clone(),
            overlay: overlay.as_ref().map(|o| (o.peers.local_addrs(), o.mdns)),
        },
    );

    // TVs browse the media indexes: build them ahead only when one can ask.
    fabric.prewarm_media(dlna.is_some());
    let upkeep = tokio::spawn(fabric.clone().maintain(Arc::new(ScanProgress::new())));
    let trimmer = crate::memory::spawn_trimmer();
    let app = http::app(
        fabric.clone(),
        tls_config.is_some(),
        dlna_banner.as_ref().map(|(a, _)| *a),
        overlay.as_ref().map(|o| {
            Arc::new(crate::overlay::PagePairing(o.peers.clone()))
                as Arc<dyn gateways::http::pairing::DevicePairing>
        }),
    );
    let mut opts = ServeOptions {
        tls: tls_config,
        // One accepting thread per core, as nginx runs one worker per core.
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ..ServeOptions::default()
    };
    if let Some(t) = header_timeout {
        opts.header_timeout = t;
    }
    if let Some(o) = overlay.as_ref().filter(|_| relay_port.is_some()) {
        let relay = o.relay.clone();
        opts.takeover = Some(http::Takeover {
            prefix: peers::relay::PREFIX,
            handler: Arc::new(move |stream| {
                let relay = relay.clone();
                Box::pin(async move { relay.serve(stream).await })
            }),
        });
    }
    // One signal stops every front at once.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let sftp_task = sftp.map(|(listener, key)| {
        tokio::spawn(gateways::sftp::serve(
            listener,
            fabric.clone(),
            key,
            header_timeout.unwrap_or(std::time::Duration::from_secs(30)),
            stopped(stop_rx.clone()),
        ))
    });
    let dlna_file = fabric.data_dir().join(DLNA_ADDR_FILE);
    let dlna_task = dlna.map(|(listener, ssdp, o)| {
        if let Some((addr, _)) = &dlna_banner {
            // Where `glow cast` finds the running front's media URLs.
            let _ = std::fs::write(&dlna_file, format!("{addr}\n"));
        }
        let front = gateways::dlna::Dlna::new(fabric.clone(), o);
        let opts = ServeOptions {
            tls: None,
            threads: 0,
            takeover: None,
            ..opts.clone()
        };
        tokio::spawn(gateways::dlna::serve(
            front,
            listener,
            ssdp,
            opts,
            stopped(stop_rx.clone()),
        ))
    });
    http::serve(listener, app, opts, stopped(stop_rx.clone())).await;
    for t in [sftp_task, dlna_task].into_iter().flatten() {
        let _ = t.await;
    }
    if dlna_banner.is_some() {
        let _ = std::fs::remove_file(&dlna_file);
    }
    upkeep.abort();
    trimmer.abort();
    if let Some(s) = syncer {
        s.abort();
    }
    if let Some(o) = &overlay {
        o.peers.close().await;
        // A stopped node hears nothing: `glow node list` must not show
        // yesterday's neighbours as nearby.
        let _ = fabric
            .node_not_nearby(&fabric::Principal::System, None)
            .await;
    }
    fabric.close().await;
    Ok(())
}

/// Binds a front's listener to the address `text` given with `flag`; the
/// errors say what was wrong and, with `hint`, what to do.
async fn listen(
    flag: &str,
    text: &str,
    example: &str,
    hint: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = text
        .parse()
        .with_context(|| format!("{flag} {text:?} is not an address like {example}"))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}{hint}"))
}

/// The file in the data dir that holds the running DLNA front's address.
pub const DLNA_ADDR_FILE: &str = "dlna.addr";

/// This node's UPnP UUID, made once and kept in the data dir (TVs know a
/// server by it: a new one would show up as another server).
fn dlna_uuid(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("dlna-uuid");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let t = text.trim();
        if let Ok(u) = uuid::Uuid::parse_str(t) {
            return Ok(u.to_string());
        }
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, format!("{uuid}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(uuid)
}

/// Opens the fabric with the settings' data dir and database.
/// (`serving`: for `glow serve` itself, whose copies budget is its own.)
pub async fn open_fabric(settings: &Settings, serving: bool) -> anyhow::Result<Fabric> {
    let cfg = FabricConfig {
        database_url: settings.database_url.clone(),
        min_free_space: settings.min_free_space,
        copies_budget: settings.copies_budget(serving),
        ..FabricConfig::new(&settings.data_dir)
    };
    let what = match &settings.database_url {
        Some(u) => format!("catalog {}", fabric::catalog::redact_url(u)),
        None => format!("data dir {}", settings.data_dir.display()),
    };
    Fabric::open(cfg)
        .await
        .with_context(|| format!("cannot open {what}"))
}

/// Creates the admin user if missing; returns the password if it was generated.
async fn ensure_admin(fabric: &Fabric, name: &str) -> anyhow::Result<AdminPassword> {
    match fabric.user(name).await {
        Ok(_) => return Ok(AdminPassword::Existing),
        Err(FabricError::Invalid(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let (password, generated) = match std::env::var("GLOW_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (fabric::auth::random_secret(20), true),
    };
    fabric
        .create_user(name, &password, true)
        .await
        .with_context(|| format!("cannot create admin user {name:?}"))?;
    Ok(if generated {
        AdminPassword::Generated(password)
    } else {
        AdminPassword::FromEnv
    })
}

/// Where the admin's password came from, for the banner.
enum AdminPassword {
    /// The user existed already.
    Existing,
    /// Taken from `GLOW_ADMIN_PASSWORD`.
    FromEnv,
    /// Made now; printed once.
    Generated(String),
}

/// Adds a served directory as a folder of the admin (again at each start:
/// an existing folder with the same path is fine).
async fn add_dir(
    fabric: &Fabric,
    admin: &str,
    dir: &std::path::Path,
    media: bool,
) -> anyhow::Result<String> {
    let real =
        std::fs::canonicalize(dir).with_context(|| format!("cannot serve {}", dir.display()))?;
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "cannot name a folder after {}; use `glow folder add NAME PATH`",
                real.display()
            )
        })?;
    let who = fabric::Principal::System;
    let existing = fabric.folders(&who, Some(admin)).await?;
    match existing.iter().find(|f| f.name == name) {
        Some(f) if f.path == real => {
            if media && !f.media {
                let addr = fabric::Address::new(admin, name.clone(), fabric::RelPath::root());
                fabric.set_folder_media(&who, &addr, true).await?;
            }
        }
        Some(f) => bail!(
            "folder {admin}/{name} already serves {}; rename the directory or use `glow folder add OTHERNAME {}`",
            f.path.display(),
            real.display()
        ),
        None => {
            let opts = FolderOptions {
                media,
                ..FolderOptions::default()
            };
            fabric.add_folder(admin, &name, &real, opts).await?;
        }
    }
    let copies = fabric
        .folders(&who, Some(admin))
        .await?
        .into_iter()
        .find(|f| f.name == name)
        .map(|f| f.copies)
        .unwrap_or_default();
    let copies = match copies {
        fabric::CopyPolicy::Off => "no copies",
        fabric::CopyPolicy::Small => "copies of small files",
        fabric::CopyPolicy::All => "copies of every file",
    };
    Ok(format!("{admin}/{name} -> {} ({copies})", real.display()))
}

/// What the start-up banner shows besides the fabric's own facts.
struct Banner<'a> {
    scheme: &'a str,
    /// The node's name among nodes.
    name: &'a str,
    local: SocketAddr,
    folders: &'a [String],
    admin: &'a str,
    password: &'a AdminPassword,
    /// The SFTP address and the host key's fingerprint, when SFTP is on.
    sftp: Option<(SocketAddr, String)>,
    /// The DLNA address and the name TVs show, when DLNA is on.
    dlna: Option<(SocketAddr, String)>,
    /// The overlay's UDP addresses and whether LAN discovery runs.
    overlay: Option<(Vec<SocketAddr>, bool)>,
    /// What copies of current content take and may take.
    copies: fabric::CopiesUsage,
}

fn print_banner(fabric: &Fabric, settings: &Settings, banner: Banner<'_>) {
    let Banner {
        scheme,
        name,
        overlay,
        local,
        folders,
        admin,
        password,
        sftp,
        dlna,
        copies,
    } = banner;
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| out.push_str(&format!("  {k:<10} {v}\n"));
    out.push_str(&format!(
        "Glow {} - node {}\n",
        env!("CARGO_PKG_VERSION"),
        fabric.node_id()
    ));
    line(&mut out, "name", name);
    line(
        &mut out,
        "data dir",
        &fabric.data_dir().display().to_string(),
    );
    let catalog = match &settings.database_url {
        Some(u) => format!("PostgreSQL {}", fabric::catalog::redact_url(u)),
        None => format!("SQLite {}", fabric.data_dir().join("catalog.db").display()),
    };
    line(&mut out, "catalog", &catalog);
    for host in hosts(local.ip()) {
        line(
            &mut out,
            "http",
            &format!("{scheme}://{host}:{}/", local.port()),
        );
    }
    line(
        &mut out,
        "files",
        &format!("/u/{admin}/ (HTTP Basic or POST /login)"),
    );
    line(&mut out, "health", "/healthz");
    if let Some((addr, fingerprint)) = &sftp {
        for host in hosts(addr.ip()) {
            line(
                &mut out,
                "sftp",
                &format!("sftp://{admin}@{host}:{}/", addr.port()),
            );
        }
        line(&mut out, "host key", &format!("ED25519 {fingerprint}"));
    }
    if let Some((addrs, mdns)) = &overlay {
        let how = if *mdns {
            "nodes on this LAN find it over mDNS"
        } else {
            "no LAN discovery here"
        };
        for addr in addrs {
            for host in hosts(addr.ip()) {
                line(
                    &mut out,
                    "overlay",
                    &format!("udp {host}:{} ({how})", addr.port()),
                );
            }
        }
    }
    if let Some((addr, name)) = &dlna {
        // TVs find it by themselves on the LAN addresses; loopback is for
        // tests and players on this host.
        for host in hosts(addr.ip()) {
            line(
                &mut out,
                "dlna",
                &format!("http://{host}:{}/dlna/description.xml", addr.port()),
            );
        }
        line(
            &mut out,
            "tv name",
            &format!("{name:?} (media folders only)"),
        );
    }
    for f in folders {
        line(&mut out, "folder", f);
    }
    line(
        &mut out,
        "copies",
        &format!(
            "{} of {} (--copies-budget), made after the first scan, oldest go first",
            crate::commands::human_bytes(copies.used),
            crate::commands::human_bytes(copies.budget)
        ),
    );
    let how = match password {
        AdminPassword::Generated(p) => format!("{admin} / {p}   (generated; shown only this once)"),
        AdminPassword::FromEnv => format!("{admin} (password from GLOW_ADMIN_PASSWORD)"),
        AdminPassword::Existing => {
            format!("{admin} (password set earlier; change it with `glow user passwd {admin}`)")
        }
    };
    line(&mut out, "sign in", &how);
    out.push_str("Ready. Ctrl-C stops.\n");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// The hosts a bound IP is reachable at, ready for a URL (IPv6 in
/// brackets).
fn hosts(bound: IpAddr) -> Vec<String> {
    addresses(bound)
        .into_iter()
        .map(|ip| match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        })
        .collect()
}

/// The addresses a bound IP is reachable at: itself, or every interface's
/// address for a wildcard bind (loopback first).
fn addresses(bound: IpAddr) -> Vec<IpAddr> {
    if !bound.is_unspecified() {
        return vec![bound];
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|list| {
            list.into_iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4() == bound.is_ipv4())
                .collect()
        })
        .unwrap_or_default();
    ips.sort_by_key(|ip| (!ip.is_loopback(), *ip));
    ips.dedup();
    if ips.is_empty() {
        ips.push(bound);
    }
    ips
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Every client holds a socket and every open file a descriptor; the soft
/// limit many systems start a process with (1024) would refuse the 1025th
/// client. Raise it to the hard limit, as nginx and Syncthing do.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise the open file limit: {e}");
        }
    }
}
