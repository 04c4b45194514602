//! Command-line flags (clap). Every command and subcommand has `--help`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Glow: reach all of your files and media on all of your devices, and share them.
#[derive(Debug, Parser)]
#[command(name = "glow", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Data dir: catalog, version blobs, keys [default: ~/.local/share/glow]
    #[arg(long, global = true, env = "GLOW_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file; its settings apply where no flag is given
    #[arg(long, global = true, env = "GLOW_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Catalog database: postgres://USER@HOST/DB [default: SQLite file in the data dir]
    #[arg(
        long,
        global = true,
        env = "GLOW_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Space every write leaves free on its disk, e.g. 5GiB; writes that would
    /// go below it fail with "no space" [default: 1GiB]
    #[arg(long, global = true, env = "GLOW_MIN_FREE_SPACE", value_name = "SIZE")]
    pub min_free_space: Option<bytesize::ByteSize>,
    /// The most copies of current content may take on this node, as a size
    /// (20GiB) or a share of the data dir's disk (10%) [default: 10%]
    #[arg(
        long,
        global = true,
        env = "GLOW_COPIES_BUDGET",
        value_name = "SIZE|PERCENT"
    )]
    pub copies_budget: Option<fabric::CopiesBudget>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: serve DIRs (added as folders of the admin user) and every front
    Serve(ServeArgs),
    /// Manage users and their credentials
    #[command(subcommand)]
    User(UserCommand),
    /// Manage folders
    #[command(subcommand)]
    Folder(FolderCommand),
    /// List the earlier versions of a file
    Versions {
        /// The file, as USER/FOLDER/PATH
        address: String,
    },
    /// Make an earlier version of a file current again
    Restore {
        /// The file, as USER/FOLDER/PATH
        address: String,
        /// Version id, from `glow versions`
        #[arg(value_name = "VERSION")]
        version_id: i64,
    },
    /// List, restore or purge deleted files
    #[command(subcommand)]
    Trash(TrashCommand),
    /// Create, list and revoke share links
    #[command(subcommand)]
    Share(ShareCommand),
    /// Play on a TV: find renderers on the LAN and tell one what to play
    #[command(subcommand)]
    Cast(CastCommand),
    /// This node, its glow (the nodes that trust each other) and the nodes it knows of
    #[command(subcommand)]
    Node(NodeCommand),
}

/// `glow node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Print this node's id (its Ed25519 public key, made once in the data
    /// dir) and its name
    Id,
    /// List the nodes this node knows of: the members of its glow, nearby
    /// ones (found on the LAN, not yet members), removed ones
    List,
    /// Print a one-time invite for another node to join this node's glow
    /// (the first invite forms the glow). Needs `glow serve` running here
    /// to answer it.
    Invite {
        /// How long the invite works (e.g. 90s, 15m, 2h; at most 7d)
        #[arg(long, value_name = "DURATION", default_value = "15m")]
        expires: String,
    },
    /// Join the glow of the node that printed CODE with `glow node invite`:
    /// the 16-letter code on the same LAN, or the GLOW:… line from anywhere
    Join {
        /// The code or the full invite
        code: String,
    },
    /// Remove a member from the glow: every member refuses its key from
    /// then on
    Remove {
        /// Its name, its id or the first digits of its id
        node: String,
    },
    /// Who changed which shared record (users, folders, share links, members), where and when
    Changes {
        /// Show at most this many
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `glow cast …`.
#[derive(Debug, Subcommand)]
pub enum CastCommand {
    /// List the TVs and renderers on the local network
    List {
        /// Seconds to wait for answers
        #[arg(long, value_name = "SECS", default_value_t = 4)]
        wait: u64,
    },
    /// Tell RENDERER to play a file (served by the running `glow serve`)
    Play {
        /// The renderer: its name (or part of it), UDN or description URL
        renderer: String,
        /// The file, as USER/FOLDER/PATH
        address: String,
        /// How long the TV may fetch the file (e.g. 3h, 1d)
        #[arg(long = "for", value_name = "DURATION", default_value = "12h")]
        ttl: String,
        /// Seconds to wait for renderers to answer
        #[arg(long, value_name = "SECS", default_value_t = 4)]
        wait: u64,
    },
    /// Pause RENDERER
    Pause {
        /// The renderer: its name (or part of it), UDN or description URL
        renderer: String,
        /// Seconds to wait for renderers to answer
        #[arg(long, value_name = "SECS", default_value_t = 4)]
        wait: u64,
    },
    /// Resume RENDERER after a pause
    Resume {
        /// The renderer: its name (or part of it), UDN or description URL
        renderer: String,
        /// Seconds to wait for renderers to answer
        #[arg(long, value_name = "SECS", default_value_t = 4)]
        wait: u64,
    },
    /// Stop RENDERER
    Stop {
        /// The renderer: its name (or part of it), UDN or description URL
        renderer: String,
        /// Seconds to wait for renderers to answer
        #[arg(long, value_name = "SECS", default_value_t = 4)]
        wait: u64,
    },
    /// Show what RENDERER is doing
    Status {
        /// The renderer: its name (or part of it), UDN or description URL
        renderer: String,
        /// Seconds to wait for renderers to answer
        #[arg(long, value_name = "SECS", default_value_t = 4)]
        wait: u64,
    },
}

/// `glow share …`.
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Create a link to USER/FOLDER[/PATH] and print its URL
    Create {
        /// What to share, as USER/FOLDER[/PATH]
        address: String,
        /// Expire after this long (e.g. 90s, 30m, 12h, 7d)
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Read a password for the link from standard input (one line)
        #[arg(long)]
        password_stdin: bool,
        /// Allow this many downloads, then refuse
        #[arg(long, value_name = "N")]
        max_downloads: Option<i64>,
        /// Visitors may only upload (a drop box): no listing, no downloads
        #[arg(long, conflicts_with = "read_write")]
        upload_only: bool,
        /// Visitors may also upload, replace and delete
        #[arg(long)]
        read_write: bool,
        /// Start of printed links, e.g. https://files.example.org [default: from --http]
        #[arg(long, env = "GLOW_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
    },
    /// List share links (of one user, or everyone's)
    List {
        /// User name
        user: Option<String>,
        /// Start of printed links [default: from --http]
        #[arg(long, env = "GLOW_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
    },
    /// Revoke a share link (by token, URL or id)
    Revoke {
        /// The token, the whole URL, or the id from `glow share list`
        token: String,
    },
}

/// `glow serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Directories to serve; each becomes a folder of the admin user, named
    /// after its last path component
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Address of the HTTP front [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Seconds a client gets to send a request's headers or finish a TLS
    /// handshake, or to finish the SSH handshake and then to sign in over
    /// SFTP, before it is dropped (slowloris guard) [default: 30]
    #[arg(long, value_name = "SECS")]
    pub header_timeout: Option<u64>,
    /// TLS mode: `self-signed` makes (once) and uses a certificate in the data dir
    #[arg(long, value_name = "MODE", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls: Option<String>,
    /// TLS certificate chain (PEM); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Address of the SFTP front (SSH, the `sftp` subsystem only), or `off`
    /// [default: 0.0.0.0:2222]
    #[arg(long, value_name = "ADDR", env = "GLOW_SFTP")]
    pub sftp: Option<String>,
    /// Do not start the SFTP front (wins over --sftp)
    #[arg(long)]
    pub no_sftp: bool,
    /// Address of the LAN media front (DLNA/UPnP, for TVs: plain HTTP and
    /// SSDP on every interface it covers), or `off` [default: 0.0.0.0:8200]
    #[arg(long, value_name = "ADDR", env = "GLOW_DLNA")]
    pub dlna: Option<String>,
    /// Do not start the LAN media front, and do not show the DIRs given here
    /// to TVs (wins over --dlna)
    #[arg(long)]
    pub no_dlna: bool,
    /// UDP address of the overlay's endpoint (QUIC; nodes on the LAN find
    /// it over mDNS), or `off` [default: 0.0.0.0:0, any free port]
    #[arg(long, value_name = "ADDR", env = "GLOW_OVERLAY")]
    pub overlay: Option<String>,
    /// Do not join the network of nodes: no endpoint, no LAN discovery
    /// (wins over --overlay)
    #[arg(long)]
    pub no_overlay: bool,
    /// This node's name, shown to the other nodes and, as the name of its
    /// media server, to TVs [default: the host name; TVs: "Glow on <hostname>"]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `glow user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; prints a generated password unless --password-stdin
    Add {
        /// User name (a-z, A-Z, 0-9, '.', '_', '-')
        name: String,
        /// Read the password from standard input (one line)
        #[arg(long)]
        password_stdin: bool,
        /// Make the user an administrator
        #[arg(long)]
        admin: bool,
    },
    /// List users
    List,
    /// Set a user's password (prompted on a terminal, else read from stdin)
    Passwd {
        /// User name
        name: String,
        /// Read the password from standard input (one line)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user and their folders from the catalog (files on disk stay)
    Remove {
        /// User name
        name: String,
    },
    /// Manage a user's SSH public keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create an app password (for a phone or WebDAV client) and print it once
    AppPassword {
        /// User name
        user: String,
        /// A label to recognise it by
        #[arg(long, default_value = "device")]
        label: String,
    },
}

/// `glow user key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add the OpenSSH public key(s) in FILE (`-` for stdin) to USER
    Add {
        /// User name
        user: String,
        /// A public key file such as ~/.ssh/id_ed25519.pub
        file: PathBuf,
    },
    /// List a user's SSH public keys
    List {
        /// User name
        user: String,
    },
}

/// `glow folder …`.
#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// Add the directory PATH as folder NAME
    Add {
        /// Folder name
        name: String,
        /// Directory on this node
        path: PathBuf,
        /// Owner [default: the admin user]
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        /// Which files keep a copy of their current content, so that edits
        /// made directly on disk are versioned too: `off`, `small` (files up
        /// to 64 MiB that are not media) or `all`
        #[arg(long, value_name = "WHICH", default_value = "small", value_parser = ["off", "small", "all"])]
        copies: String,
        /// The same as `--copies off`
        #[arg(long, conflicts_with = "copies")]
        no_keep_copies: bool,
        /// Show this folder to TVs and media players on the LAN (DLNA)
        #[arg(long)]
        media: bool,
    },
    /// List folders
    List,
    /// Keep a replica of a folder of this glow in PATH (made if missing):
    /// its files arrive from the members that have it, and changes made
    /// here reach them
    Replicate {
        /// The folder, as USER/FOLDER (`glow folder list` shows the glow's)
        address: String,
        /// Directory on this node; files already there that match are kept
        path: PathBuf,
    },
    /// How each folder stands with the members it syncs with: in sync,
    /// syncing (what is left) or failing (why)
    Status {
        /// The folder, as USER/FOLDER [default: every folder here]
        address: Option<String>,
    },
    /// Compare a folder's catalog with its directory; exit 1 if they differ
    Verify {
        /// The folder, as USER/FOLDER
        address: String,
    },
    /// Remove a folder from the catalog (its directory stays on disk)
    Remove {
        /// The folder, as USER/FOLDER
        address: String,
    },
    /// Set which files of a folder keep copies of their current content
    /// (`off`, `small`, `all`) and, optionally, the most they may take
    Copies {
        /// The folder, as USER/FOLDER
        address: String,
        /// `off`, `small` (files up to 64 MiB that are not media) or `all`
        #[arg(value_parser = ["off", "small", "all"])]
        which: String,
        /// The most this folder's copies may take, e.g. 5GiB [default: the node's budget]
        #[arg(long, value_name = "SIZE")]
        budget: Option<bytesize::ByteSize>,
    },
    /// Show a folder to TVs and media players on the LAN (`on`), or hide it
    /// (`off`)
    Media {
        /// The folder, as USER/FOLDER
        address: String,
        /// `on` or `off`
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// `glow trash …`.
#[derive(Debug, Subcommand)]
pub enum TrashCommand {
    /// List a user's deleted files
    List {
        /// User name
        user: String,
    },
    /// Put a deleted item back
    Restore {
        /// User name
        user: String,
        /// Trash id, from `glow trash list`
        id: i64,
    },
    /// Delete items for good (all of the user's, unless an id is given)
    Purge {
        /// User name
        user: String,
        /// Trash id
        id: Option<i64>,
    },
}
