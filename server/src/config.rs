//! Settings: the TOML config file, overridden by flags and environment.
//!
//! A bad file gets one error line naming the file, the line and the key.

use crate::flags::{GlobalArgs, ServeArgs};
use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What a config file may set; every key matches a flag.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--http`.
    pub http: Option<String>,
    /// `--tls`.
    pub tls: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `glow serve DIR…`.
    pub folders: Option<Vec<PathBuf>>,
    /// `--header-timeout`.
    pub header_timeout: Option<u64>,
    /// `--public-url`: how others reach this node (for printed links).
    pub public_url: Option<String>,
    /// `--sftp`: address of the SFTP front, or `"off"`.
    pub sftp: Option<String>,
    /// `--dlna`: address of the LAN media front, or `"off"`.
    pub dlna: Option<String>,
    /// `--overlay`: UDP address of the overlay's endpoint, or `"off"`.
    pub overlay: Option<String>,
    /// `--name`: the name TVs show for this node.
    pub name: Option<String>,
    /// `--min-free-space`, e.g. `"5GiB"`.
    pub min_free_space: Option<bytesize::ByteSize>,
    /// `--copies-budget`, e.g. `"10%"` or `"20GiB"`.
    pub copies_budget: Option<String>,
}

/// Settings after merging the file with flags.
#[derive(Debug)]
pub struct Settings {
    /// The data dir (not yet created).
    pub data_dir: PathBuf,
    /// PostgreSQL URL, or `None` for SQLite.
    pub database_url: Option<String>,
    /// Space every write leaves free, in bytes.
    pub min_free_space: u64,
    /// The most copies of current content may take, if a flag, the
    /// environment or the file says.
    pub copies_budget: Option<fabric::CopiesBudget>,
    /// The file's settings, for `serve` to merge with its own flags.
    pub file: FileConfig,
}

impl Settings {
    /// Reads the config file (if any) and applies the global flags over it.
    pub fn load(global: &GlobalArgs) -> anyhow::Result<Settings> {
        let file = match &global.config {
            Some(path) => parse_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = match global.data_dir.clone().or_else(|| file.data_dir.clone()) {
            Some(d) => d,
            None => default_data_dir()?,
        };
        let database_url = global
            .database_url
            .clone()
            .or_else(|| file.database_url.clone());
        let min_free_space = global
            .min_free_space
            .or(file.min_free_space)
            .map_or(fabric::DEFAULT_MIN_FREE_SPACE, |b| b.as_u64());
        let copies_budget = match (global.copies_budget, &file.copies_budget) {
            (Some(b), _) => Some(b),
            (None, Some(text)) => Some(text.parse().map_err(|e| {
                anyhow::anyhow!(
                    "config file {}: key `copies_budget`: {e}",
                    global
                        .config
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            })?),
            (None, None) => None,
        };
        Ok(Settings {
            data_dir,
            database_url,
            min_free_space,
            copies_budget,
            file,
        })
    }

    /// The copies budget a command works with: the one given, else (for
    /// the commands beside a server, so that `glow folder list` shows what
    /// the server uses) the one the last `glow serve` on this data dir
    /// recorded, else the default.
    pub fn copies_budget(&self, serving: bool) -> fabric::CopiesBudget {
        if let Some(b) = self.copies_budget {
            return b;
        }
        if !serving
            && let Ok(text) = std::fs::read_to_string(self.data_dir.join(COPIES_BUDGET_FILE))
            && let Ok(b) = text.trim().parse()
        {
            return b;
        }
        fabric::CopiesBudget::default()
    }

    /// The start of links given to others: flag, else file, else this node's
    /// first LAN address and the HTTP port.
    pub fn public_url(&self, flag: Option<&str>) -> String {
        if let Some(u) = flag
            .map(str::to_owned)
            .or_else(|| self.file.public_url.clone())
        {
            return u.trim_end_matches('/').to_owned();
        }
        let http = self
            .file
            .http
            .clone()
            .unwrap_or_else(|| "0.0.0.0:8080".into());
        let addr: std::net::SocketAddr =
            http.parse().unwrap_or_else(|_| ([0, 0, 0, 0], 8080).into());
        let host = if addr.ip().is_unspecified() {
            if_addrs::get_if_addrs()
                .ok()
                .and_then(|l| {
                    l.into_iter()
                        .map(|i| i.ip())
                        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
                })
                .unwrap_or_else(|| [127, 0, 0, 1].into())
        } else {
            addr.ip()
        };
        let scheme = if self.file.tls.is_some() || self.file.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        match host {
            std::net::IpAddr::V6(h) => format!("{scheme}://[{h}]:{}", addr.port()),
            h => format!("{scheme}://{h}:{}", addr.port()),
        }
    }

    /// The SFTP address: `None` when it is off (`--no-sftp`, or `sftp =
    /// "off"` in the file); else flag, else file, else `0.0.0.0:2222`.
    pub fn sftp_addr(&self, args: &ServeArgs) -> Option<String> {
        front_addr(args.no_sftp, &args.sftp, &self.file.sftp, "0.0.0.0:2222")
    }

    /// The DLNA address: `None` when it is off (`--no-dlna`, or `dlna =
    /// "off"` in the file); else flag, else file, else `0.0.0.0:8200`.
    pub fn dlna_addr(&self, args: &ServeArgs) -> Option<String> {
        front_addr(args.no_dlna, &args.dlna, &self.file.dlna, "0.0.0.0:8200")
    }

    /// The overlay's UDP address: `None` when it is off (`--no-overlay`, or
    /// `overlay = "off"`); else flag, else file, else `0.0.0.0:0` (any free
    /// port: nodes on the LAN learn it over mDNS).
    pub fn overlay_addr(&self, args: &ServeArgs) -> Option<String> {
        front_addr(
            args.no_overlay,
            &args.overlay,
            &self.file.overlay,
            "0.0.0.0:0",
        )
    }

    /// Whether the DLNA address is the default one (no flag, no file key).
    pub fn dlna_is_default(&self, args: &ServeArgs) -> bool {
        args.dlna.is_none() && self.file.dlna.is_none()
    }

    /// The name given to this node: flag, else file (blank is none).
    fn given_name(&self, args: &ServeArgs) -> Option<String> {
        args.name
            .clone()
            .or_else(|| self.file.name.clone())
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
    }

    /// The name TVs show: the given name, else "Glow on <hostname>".
    pub fn node_name(&self, args: &ServeArgs) -> String {
        self.given_name(args)
            .unwrap_or_else(|| format!("Glow on {}", hostname()))
    }

    /// The node's name among nodes: the given name, else the host name.
    pub fn peer_name(&self, args: &ServeArgs) -> String {
        self.given_name(args).unwrap_or_else(hostname)
    }

    /// The HTTP address: flag, else file, else `0.0.0.0:8080`.
    pub fn http_addr(&self, args: &ServeArgs) -> String {
        args.http
            .clone()
            .or_else(|| self.file.http.clone())
            .unwrap_or_else(|| "0.0.0.0:8080".into())
    }
}

/// A front's address: `None` when `off` (its `--no-…` flag) or set to
/// `"off"`; else the flag, else the file's key, else `default`.
fn front_addr(
    off: bool,
    flag: &Option<String>,
    file: &Option<String>,
    default: &str,
) -> Option<String> {
    if off {
        return None;
    }
    let addr = flag
        .clone()
        .or_else(|| file.clone())
        .unwrap_or_else(|| default.into());
    (addr != "off").then_some(addr)
}

/// This machine's host name, or "this computer".
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this computer".into())
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    match dirs::data_dir() {
        Some(d) => Ok(d.join("glow")),
        None => bail!("cannot tell where user data goes on this system; pass --data-dir DIR"),
    }
}

/// Parses a config file; errors say `FILE:LINE: key `K`: what is wrong`.
pub fn parse_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_text(&text).map_err(|e| anyhow::anyhow!("config file {}:{e}", path.display()))
}

fn parse_text(text: &str) -> Result<FileConfig, String> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let msg = e.message().trim().to_owned();
        match e.span() {
            Some(span) => {
                let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("");
                let key = line
                    .split_once('=')
                    .map(|(k, _)| k.trim())
                    .unwrap_or("")
                    .trim_matches('"');
                if key.is_empty() {
                    format!("{line_no}: {msg}")
                } else {
                    format!("{line_no}: key `{key}`: {msg}")
                }
            }
            None => format!(" {msg}"),
        }
    })
}

/// The file in the data dir where `glow serve` records its copies budget.
pub const COPIES_BUDGET_FILE: &str = "copies-budget";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "http = \"127.0.0.1:9\"\nfolders = [\"/a\", \"/b\"]\nsftp = \"off\"\nmin_free_space = \"5 GiB\"\nname = \"Glow\"\n";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any file parses or gives an error that names a line; never a panic.
        #[test]
        fn any_config_text_is_judged(text in prop_oneof![
            "\\PC{0,80}",
            "[a-z_]{1,12} = (\"[^\"]{0,8}\"|[0-9]{1,4}|\\[|true)\n{0,2}",
            (0usize..SAMPLE.len(), "\\PC{0,6}").prop_map(|(i, s)| {
                let i = (0..=i).rev().find(|i| SAMPLE.is_char_boundary(*i)).unwrap_or(0);
                format!("{}{s}{}", &SAMPLE[..i], &SAMPLE[i..])
            }),
        ]) {
            if let Err(e) = parse_text(&text) {
                prop_assert!(!e.is_empty());
            }
        }
    }

    #[test]
    fn good_file_parses() {
        let c = parse_text("http = \"127.0.0.1:9\"\nfolders = [\"/a\", \"/b\"]\n").unwrap();
        assert_eq!(c.http.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(c.folders.unwrap().len(), 2);
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = parse_text("http = \"x\"\n\nhtp = \"y\"\n").unwrap_err();
        assert!(e.starts_with("3: key `htp`"), "{e}");
        let e = parse_text("data_dir = 5\n").unwrap_err();
        assert!(e.starts_with("1: key `data_dir`"), "{e}");
        let e = parse_text("http = \n").unwrap_err();
        assert!(e.starts_with("1:"), "{e}");
    }
}
