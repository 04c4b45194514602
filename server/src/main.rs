//! `glow`: the binary. Thin on purpose: parse flags, run, print the error
//! chain on one line and exit non-zero. Everything else is in the modules.

mod config;
mod flags;
mod memory;
mod overlay;
mod progress;
mod serve;
mod tls;

/// `println!` for the commands' output: a reader that stopped reading
/// (`glow node invite | head -2`) ends the command quietly, as in
/// ripgrep, instead of std's panic on a broken pipe; any other failure
/// (a full disk) is one line and exit status 1. The server's own modules
/// above keep std's.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("glow: cannot write the output: {e}");
            std::process::exit(1);
        }
    }};
}

mod cast;
mod commands;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a small-file request allocates and
/// frees a few dozen buffers across threads, where glibc's arenas spent a
/// tenth of the CPU (and kept freed memory per thread).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    init_logging(matches!(cli.command, flags::Command::Serve(_)));
    memory::limit_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: flags::Cli) -> anyhow::Result<()> {
    // One crypto provider for the whole process (ring), installed before any
    // TLS code runs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = config::Settings::load(&cli.global)?;
    match cli.command {
        flags::Command::Serve(args) => serve::run(settings, args).await,
        other => commands::run(settings, other).await,
    }
}

fn init_logging(serving: bool) {
    use tracing_subscriber::EnvFilter;
    // Glow's own events from `info`; other crates' only when they are
    // errors, and for a command not at all (its error is its result; iroh
    // logs an error when a command's short-lived endpoint closes): their
    // warnings are for their developers (a metadata crate warned once per
    // MP3 it estimated), and `GLOW_LOG=debug` shows everything.
    let others = if serving { "error" } else { "off" };
    let filter = EnvFilter::try_from_env("GLOW_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| {
            EnvFilter::new(format!(
                "{others},glow=info,fabric=info,gateways=info,peers=info"
            ))
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
