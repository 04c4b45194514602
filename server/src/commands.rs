//! The management commands: users, keys, app passwords, folders, versions,
//! trash. They open the same catalog as a running server (SQLite in WAL mode
//! or PostgreSQL), so they work beside it; the server picks up new folders
//! within seconds.

use crate::config::Settings;
use crate::flags::{
    Command, FolderCommand, KeyCommand, NodeCommand, ShareCommand, TrashCommand, UserCommand,
};
use crate::serve::open_fabric;
use anyhow::{Context, bail};
use fabric::{Address, CopyPolicy, Fabric, FolderOptions, Principal};
use std::io::{BufRead, IsTerminal, Read};

/// Runs one management command.
pub async fn run(settings: Settings, cmd: Command) -> anyhow::Result<()> {
    if let Command::Node(NodeCommand::Id) = cmd {
        return node_id(&settings);
    }
    let fabric = open_fabric(&settings, false).await?;
    let result = match cmd {
        Command::Share(s) => share(&fabric, &settings, s).await,
        Command::Cast(c) => crate::cast::run(&fabric, c).await,
        other => dispatch(&fabric, other).await,
    };
    fabric.close().await;
    result
}

async fn dispatch(fabric: &Fabric, cmd: Command) -> anyhow::Result<()> {
    let system = Principal::System;
    match cmd {
        Command::Serve(_)
        | Command::Share(_)
        | Command::Cast(_)
        | Command::Node(NodeCommand::Id) => {
            unreachable!("dispatched elsewhere")
        }
        Command::User(u) => user(fabric, u).await?,
        Command::Node(NodeCommand::List) => node_list(fabric).await?,
        Command::Node(NodeCommand::Invite { expires }) => {
            let ttl = humantime::parse_duration(&expires).with_context(|| {
                format!("--expires {expires:?}: use a duration such as 15m, 2h or 1d")
            })?;
            let invite = crate::overlay::invite(fabric, ttl).await?;
            if invite.addrs.is_empty() {
                eprintln!(
                    "note: this node's overlay addresses are not known yet: start `glow serve` \
                     here, or join with the code on the same LAN"
                );
            }
            println!("On the same network, run on the new node:");
            println!("    glow node join {}", invite.code());
            println!("From anywhere:");
            println!("    glow node join {}", invite.full());
            println!(
                "It works once, for {} (and while `glow serve` runs here).",
                humantime::format_duration(ttl)
            );
            match &invite.relay {
                Some(relay) => {
                    println!("The full invite reaches this node through the relay {relay} too.")
                }
                None => println!(
                    "The full invite reaches this node at its own addresses only (no relay yet)."
                ),
            }
        }
        Command::Node(NodeCommand::Join { code }) => {
            let name = node_name(fabric.data_dir());
            let inviter = crate::overlay::join(fabric, &code, &name).await?;
            println!(
                "joined the glow of node {}: this node takes its users and settings \
                 within seconds while `glow serve` runs here",
                head(&inviter, 10)
            );
        }
        Command::Node(NodeCommand::Remove { node }) => {
            let m = fabric.remove_member(&system, &node).await?;
            println!(
                "removed {} ({}) from the glow: members refuse it from now on",
                m.name,
                m.id.short()
            );
        }
        Command::Node(NodeCommand::Changes { limit }) => {
            let changes = fabric.record_changes(&system, None, limit).await?;
            println!(
                "{:<20}  {:<7}  {:<24}  {:<10}  {:<12}  STATE",
                "WHEN", "KIND", "KEY", "NODE", "BY"
            );
            for c in changes {
                let key = if c.kind == fabric::MEMBER {
                    head(&c.key, 10)
                } else {
                    c.key.clone()
                };
                let state = match (c.current, c.deleted) {
                    (true, false) => "current".to_owned(),
                    (true, true) => "deleted".to_owned(),
                    (false, _) => c.reason.clone(),
                };
                println!(
                    "{:<20}  {:<7}  {key:<24}  {:<10}  {:<12}  {state}",
                    format_ms(c.changed_at),
                    c.kind,
                    head(&c.origin, 10),
                    c.changed_by
                );
            }
        }
        Command::Folder(FolderCommand::Add {
            name,
            path,
            owner,
            copies,
            no_keep_copies,
            media,
        }) => {
            let owner = match owner {
                Some(o) => o,
                None => std::env::var("GLOW_ADMIN_USER").unwrap_or_else(|_| "admin".into()),
            };
            let copies = if no_keep_copies {
                CopyPolicy::Off
            } else {
                CopyPolicy::parse(&copies).unwrap_or_default()
            };
            let opts = FolderOptions { copies, media };
            let f = fabric.add_folder(&owner, &name, &path, opts).await?;
            println!(
                "added folder {}/{} -> {}",
                f.owner,
                f.name,
                f.path.display()
            );
        }
        Command::Folder(FolderCommand::List) => {
            let node = fabric.copies_usage(None).await?;
            for f in fabric.folders(&system, None).await? {
                let usage = fabric.copies_usage(Some(&f)).await?;
                let copies = match f.copies {
                    CopyPolicy::Off => "copies off".to_owned(),
                    p => format!(
                        "copies {} ({} of {})",
                        p.as_str(),
                        human_bytes(usage.used),
                        human_bytes(usage.budget)
                    ),
                };
                let media = if f.media { "\tmedia" } else { "" };
                println!(
                    "{}/{}\t{}\t{copies}{media}",
                    f.owner,
                    f.name,
                    f.path.display(),
                );
            }
            println!(
                "copies on this node: {} of {} (--copies-budget)",
                human_bytes(node.used),
                human_bytes(node.budget)
            );
            // Folders other members defined, with no replica here yet.
            let here = fabric.folders(&system, None).await?;
            let members = fabric.members(&system).await?;
            for g in fabric.glow_folders(&system).await? {
                if here.iter().any(|f| f.owner == g.owner && f.name == g.name) {
                    continue;
                }
                let on = members
                    .iter()
                    .find(|m| m.id.to_string() == g.origin)
                    .map_or_else(|| head(&g.origin, 10), |m| m.name.clone());
                println!("{}/{}	(on {on}; no replica on this node)", g.owner, g.name);
            }
        }
        Command::Folder(FolderCommand::Copies {
            address,
            which,
            budget,
        }) => {
            let a = Address::parse(&address)?;
            let policy = CopyPolicy::parse(&which).unwrap_or_default();
            fabric
                .set_folder_copies(&system, &a, policy, budget.map(|b| b.as_u64()))
                .await?;
            println!("{a}: {}", policy.describe());
        }
        Command::Folder(FolderCommand::Verify { address }) => {
            let a = Address::parse(&address)?;
            let diffs = fabric.verify_folder(&system, &a).await?;
            if !diffs.is_empty() {
                for d in &diffs {
                    println!("{d}");
                }
                bail!(
                    "{} difference(s) between the catalog and the disk of {address}; `glow serve` reconciles them at start",
                    diffs.len()
                );
            }
            println!("{address}: catalog and disk agree");
        }
        Command::Folder(FolderCommand::Media { address, state }) => {
            let a = Address::parse(&address)?;
            let on = state == "on";
            fabric.set_folder_media(&system, &a, on).await?;
            if on {
                println!(
                    "{a} is shown to TVs on the LAN (a running server picks it up within seconds)"
                );
            } else {
                println!("{a} is hidden from TVs");
            }
        }
        Command::Folder(FolderCommand::Replicate { address, path }) => {
            let a = Address::parse(&address)?;
            let defined = fabric
                .glow_folders(&system)
                .await?
                .into_iter()
                .find(|g| g.owner == a.user && g.name == a.folder);
            let Some(def) = defined else {
                anyhow::bail!(
                    "no folder {}/{} in this glow; `glow folder list` shows them",
                    a.user,
                    a.folder
                );
            };
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot make {}", path.display()))?;
            let opts = FolderOptions {
                copies: CopyPolicy::default(),
                media: def.media,
            };
            let f = fabric.add_folder(&a.user, &a.folder, &path, opts).await?;
            println!(
                "replica of {}/{} at {}: its files arrive from the members that have it (`glow folder status`)",
                f.owner,
                f.name,
                f.path.display()
            );
        }
        Command::Folder(FolderCommand::Status { address }) => {
            let members = fabric.members(&system).await?;
            let me = fabric.node_id().to_string();
            let now = fabric::resource::now_ms();
            let keys: Vec<String> = match address {
                Some(a) => vec![a.trim_matches('/').to_owned()],
                None => fabric.replicas().into_iter().map(|r| r.key).collect(),
            };
            if keys.is_empty() {
                println!("no folder on this node");
            }
            for key in keys {
                let states = match fabric.sync_status(&system, &key).await {
                    Err(fabric::FabricError::NotFound | fabric::FabricError::Invalid(_)) => {
                        bail!("no folder {key} on this node; `glow folder list` shows them")
                    }
                    other => other?,
                };
                println!("{key}");
                let others: Vec<_> = members
                    .iter()
                    .filter(|m| !m.revoked && m.id.to_string() != me)
                    .collect();
                if others.is_empty() {
                    println!("  no other member: nothing to sync with (`glow node invite`)");
                }
                for m in others {
                    let id = m.id.to_string();
                    let name = if m.name.is_empty() {
                        head(&id, 10)
                    } else {
                        m.name.clone()
                    };
                    let line = match states.iter().find(|s| s.peer == id) {
                        None => "not reached yet".to_owned(),
                        Some(s) => sync_line(s, now),
                    };
                    println!("  {name:<16} {line}");
                }
            }
        }
        Command::Folder(FolderCommand::Remove { address }) => {
            let a = Address::parse(&address)?;
            fabric.remove_folder(&a.user, &a.folder).await?;
            println!(
                "removed folder {}/{} (its files stay on disk)",
                a.user, a.folder
            );
        }
        Command::Versions { address } => {
            let a = Address::parse(&address)?;
            let list = fabric.versions(&system, &a).await?;
            if list.is_empty() {
                println!("no earlier versions of {a}");
            }
            for v in list {
                println!(
                    "{}\t{}\t{} bytes\t{} via {} by {}",
                    v.id,
                    format_ms(v.created_at),
                    v.size,
                    v.reason,
                    v.front,
                    v.actor
                );
            }
        }
        Command::Restore {
            address,
            version_id,
        } => {
            let a = Address::parse(&address)?;
            fabric
                .restore_version(&system, &a, version_id, "cli")
                .await?;
            println!("restored version {version_id} of {a}");
        }
        Command::Trash(TrashCommand::List { user }) => {
            for t in fabric.trash(&system, &user).await? {
                println!(
                    "{}\t{}\t{}/{}\t{} file(s), {} bytes\tby {} via {}",
                    t.id,
                    format_ms(t.deleted_at),
                    t.folder,
                    t.path,
                    t.files,
                    t.size,
                    t.actor,
                    t.front
                );
            }
        }
        Command::Trash(TrashCommand::Restore { user, id }) => {
            fabric.restore_trash(&system, &user, id, "cli").await?;
            println!("restored trash item {id}");
        }
        Command::Trash(TrashCommand::Purge { user, id }) => {
            let freed = fabric.purge_trash(&system, &user, id).await?;
            println!("purged; {freed} blob(s) freed");
        }
    }
    Ok(())
}

async fn user(fabric: &Fabric, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            admin,
        } => {
            let (password, generated) = if password_stdin {
                (read_password_line()?, false)
            } else {
                (fabric::auth::random_secret(20), true)
            };
            fabric.create_user(&name, &password, admin).await?;
            if generated {
                println!("added user {name}; password: {password}  (shown only this once)");
            } else {
                println!("added user {name}");
            }
        }
        UserCommand::List => {
            for u in fabric.users().await? {
                println!(
                    "{}{}\tsince {}",
                    u.name,
                    if u.is_admin { " (admin)" } else { "" },
                    format_ms(u.created_at)
                );
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = if !password_stdin && std::io::stdin().is_terminal() {
                let p = rpassword::prompt_password(format!("new password for {name}: "))?;
                let again = rpassword::prompt_password("again: ")?;
                if p != again {
                    bail!("the two passwords differ; nothing changed");
                }
                p
            } else {
                read_password_line()?
            };
            fabric.set_password(&name, &password).await?;
            println!("password of {name} changed");
        }
        UserCommand::Remove { name } => {
            fabric.remove_user(&name).await?;
            println!("removed user {name} (their files stay on disk)");
        }
        UserCommand::Key(KeyCommand::Add { user, file }) => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let mut added = 0;
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let k = fabric.add_ssh_key(&user, line).await?;
                println!("added {} key {} {}", k.algorithm, k.fingerprint, k.comment);
                added += 1;
            }
            if added == 0 {
                bail!("no public key found in {}", file.display());
            }
        }
        UserCommand::Key(KeyCommand::List { user }) => {
            for k in fabric.ssh_keys(&user).await? {
                println!("{}\t{}\t{}", k.algorithm, k.fingerprint, k.comment);
            }
        }
        UserCommand::AppPassword { user, label } => {
            let (_, secret) = fabric.create_app_password(&user, &label).await?;
            println!("{secret}");
            eprintln!(
                "app password {label:?} for {user}: shown only this once; use it in place of the password"
            );
        }
    }
    Ok(())
}

async fn share(fabric: &Fabric, settings: &Settings, cmd: ShareCommand) -> anyhow::Result<()> {
    let system = Principal::System;
    match cmd {
        ShareCommand::Create {
            address,
            expires,
            password_stdin,
            max_downloads,
            upload_only,
            read_write,
            public_url,
        } => {
            let addr = Address::parse(&address)?;
            let expires_at = match expires {
                Some(text) => {
                    let d = humantime::parse_duration(&text).with_context(|| {
                        format!("--expires {text:?}: use a duration such as 30m, 12h or 7d")
                    })?;
                    Some(fabric::resource::now_ms() + d.as_millis() as i64)
                }
                None => None,
            };
            let password = if password_stdin {
                Some(read_password_line()?)
            } else {
                None
            };
            let permission = if upload_only {
                fabric::SharePermission::Upload
            } else if read_write {
                fabric::SharePermission::ReadWrite
            } else {
                fabric::SharePermission::Read
            };
            let opts = fabric::ShareOptions {
                permission,
                expires_at,
                password,
                max_downloads,
            };
            let s = fabric.create_share(&system, &addr, opts).await?;
            println!(
                "{}/s/{}/",
                settings.public_url(public_url.as_deref()),
                s.token.as_deref().unwrap_or_default()
            );
        }
        ShareCommand::List { user, public_url } => {
            let base = settings.public_url(public_url.as_deref());
            for s in fabric.shares(&system, user.as_deref()).await? {
                let state = s
                    .dead_reason(fabric::resource::now_ms())
                    .map(|_| "dead")
                    .unwrap_or("live");
                let limit = s.max_downloads.map(|m| format!("/{m}")).unwrap_or_default();
                let expiry = s
                    .expires_at
                    .map(format_ms)
                    .unwrap_or_else(|| "never".into());
                let url = match &s.token {
                    Some(t) => format!("{base}/s/{t}/"),
                    None => "(made with another data dir)".to_owned(),
                };
                println!(
                    "{url}\t{}/{}/{}\t{}\t{state}{}\texpires {expiry}\t{} download(s){limit}\t{} open(s)\tid {}",
                    s.owner,
                    s.folder,
                    s.path,
                    s.permission.as_str(),
                    if s.has_password { ", password" } else { "" },
                    s.downloads,
                    s.uses,
                    s.id
                );
            }
        }
        ShareCommand::Revoke { token } => {
            // Accept the whole URL as printed by `share create`.
            let t = token
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(&token)
                .to_owned();
            fabric.revoke_share(&system, &t).await?;
            println!("revoked");
        }
    }
    Ok(())
}

fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let p = line.trim_end_matches(['\n', '\r']).to_owned();
    if p.is_empty() {
        bail!("no password on stdin");
    }
    Ok(p)
}

/// One member's line of `glow folder status`.
fn sync_line(s: &fabric::catalog::SyncStateRow, now: i64) -> String {
    let ago = (now - s.checked_at).max(0) / 1000;
    let when = format!(
        "checked {ago} s ago, {} received",
        human_bytes(u64::try_from(s.received_bytes).unwrap_or(0))
    );
    match s.state(now) {
        "not-reached" if s.checked_at == 0 => "not reached yet".to_owned(),
        "not-reached" => format!("not reached since {}", format_ms(s.checked_at)),
        "no-replica" => format!("keeps no replica of this folder ({when})"),
        "failing" => format!("failing: {} ({when})", s.error),
        "syncing" => format!(
            "syncing: {} files, {} left ({when})",
            s.left_files,
            human_bytes(u64::try_from(s.left_bytes).unwrap_or(0))
        ),
        _ => format!("in sync ({when})"),
    }
}

/// A UTC timestamp for listings.
fn format_ms(ms: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm): no date crate for one line.
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A size as people read it (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// The name `glow serve` last ran under, else the host name.
fn node_name(data_dir: &std::path::Path) -> String {
    fabric::read_node_name(data_dir).unwrap_or_else(crate::config::hostname)
}

/// `glow node id`: needs only the data dir (no catalog).
fn node_id(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    let key = fabric::NodeKey::load_or_create(dir)?;
    println!("id    {}", key.id());
    println!("name  {}", node_name(dir));
    Ok(())
}

/// `glow node list`: this node, the members of its glow, then the other
/// nodes it knows of.
async fn node_list(fabric: &Fabric) -> anyhow::Result<()> {
    let nodes = fabric.node_views(&Principal::System).await?;
    println!(
        "{:<9} {:<64}  {:<20}  {:<24}  {:<20}  LINK",
        "STATE", "ID", "NAME", "ADDRESSES", "LAST SEEN"
    );
    for n in &nodes {
        let name = if n.state == fabric::NodeState::This {
            node_name(fabric.data_dir())
        } else {
            n.name.clone()
        };
        let addrs = if n.addrs.is_empty() {
            "-".to_owned()
        } else {
            n.addrs.join(",")
        };
        let seen = n.last_seen_ms.map_or("-".into(), format_ms);
        // The server keeps the links; a command sees what it last reported.
        let link = match &n.link {
            Some(l) => format!(
                "{} {} {:.1} ms",
                l.class.as_str(),
                if l.direct { "direct" } else { "relayed" },
                l.rtt_ms
            ),
            None => "-".into(),
        };
        println!(
            "{:<9} {:<64}  {name:<20}  {addrs:<24}  {seen:<20}  {link}",
            n.state.as_str(),
            n.id.to_string(),
        );
    }
    if nodes.len() == 1 {
        eprintln!(
            "no other node yet: a `glow serve` on the same network shows here within seconds"
        );
    }
    Ok(())
}

/// The first `n` characters of `text` (a cut by bytes could split one).
fn head(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::format_ms(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::format_ms(1_764_072_000_000), "2025-11-25 12:00:00Z");
    }
}
