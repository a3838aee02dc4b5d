//! The `lacquer` command: run a node, check a config, or try the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lacquer::config::{Config, LogFormat};

// glibc malloc fragments under a cache's churn (objects of mixed sizes freed in
// LRU order): after a fill, the same pass-through request cost 30% more CPU in
// malloc_consolidate/unlink_chunk. mimalloc's per-size pages do not degrade.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 in `mi_option_t`, v2 and v3 alike; the
/// Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Make freed memory leave RSS at once. A cache frees large bodies in LRU order all the
/// time and mimalloc kept them for its purge delay (1 s). Soak with bodies of 100 B to
/// 1 MiB and a 32 MiB cache (tests/soak.rs, SOAK_MIX=1), cache RSS over its bound:
/// 2.8x as it was, 2.4x without transparent huge pages (the `no_thp` feature: a 2 MiB
/// page leaves RSS only when all of it is free), 1.6-1.9x also without purge delay.
/// Purging costs a madvise per freed span; small objects live in reused pages.
fn tune_allocator() {
    // SAFETY: mi_option_set is not thread safe; this runs first in main, before any
    // other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// mimalloc gives freed pages back to the OS only after a delay (1 s), and only when some
/// thread next enters the allocator's slow path: after a burst (768 stalled HTTP/2
/// streams: 825 MiB) an idle process kept all of it for good. A collect each second
/// performs the purges that are due, whatever the load.
async fn return_freed_memory() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: mi_collect takes no pointers; `false` asks for the cheap collection
        // (this thread's heap and the purges already due), safe from any thread.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}

#[derive(Parser)]
#[command(
    name = "lacquer",
    version,
    about = "A caching reverse proxy and edge node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. With --config, from a file; without, quick mode like `varnishd -a -b`.
    Run {
        /// Config file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on (repeatable); overrides the config's listeners.
        #[arg(long, short)]
        listen: Vec<SocketAddr>,
        /// Origin host:port (repeatable); overrides the config's origins.
        #[arg(long, short)]
        origin: Vec<String>,
        /// Log one line per request. Quick mode leaves it off, like varnishd (whose
        /// access log is a separate tool); with --config, `[log] access_log` decides.
        #[arg(long)]
        access_log: bool,
        /// Admin API address (overrides [admin] address), or "off" to run without it.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Validate a config file; print every problem with file:line.
    CheckConfig { file: PathBuf },
    /// Start the bundled demo origin and a lacquer node in front of it.
    Demo {
        /// Config for the lacquer node; its first origin address is where the demo origin listens.
        #[arg(long, short, default_value = "conf/lacquer.toml")]
        config: PathBuf,
    },
    /// Purge cached objects through a node's admin API.
    Purge(lacquer::cli::PurgeArgs),
    /// Fetch every URL listed in FILE (one a line) into a node's cache.
    Prewarm(lacquer::cli::PrewarmArgs),
    /// Push a file into a node's cache as the object for URL.
    Push(lacquer::cli::PushArgs),
    /// Show what a node holds for URL.
    Inspect(lacquer::cli::InspectArgs),
    /// Which site, origin group, cache rules and cache key a URL gets.
    Route(lacquer::cli::RouteArgs),
    /// A live view of a node's counters and rates (like varnishstat).
    Stat(lacquer::stat::StatArgs),
    /// Geo-routing tools.
    Geo {
        #[command(subcommand)]
        command: GeoCommand,
    },
}

#[derive(Subcommand)]
enum GeoCommand {
    /// Print, as JSON, what this node would decide for a client address.
    Lookup {
        ip: String,
        /// Config to read [geo] from (default conf/lacquer.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config,
            listen,
            origin,
            access_log,
            admin,
        } => {
            let quick = config.is_none();
            let mut cfg = match load(config, &listen, &origin) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            if quick || access_log {
                cfg.log.access_log = access_log;
            }
            match admin.as_deref() {
                None => {}
                Some("off") => cfg.admin.enabled = false,
                Some(a) => match a.parse() {
                    Ok(addr) => cfg.admin.address = addr,
                    Err(e) => {
                        eprintln!("--admin {a:?}: {e} (expected IP:PORT or \"off\")");
                        return ExitCode::FAILURE;
                    }
                },
            }
            serve(cfg, false)
        }
        Command::Demo { config } => match Config::load(&config) {
            Ok(cfg) => serve(cfg, true),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Purge(args) => lacquer::cli::purge(args),
        Command::Prewarm(args) => lacquer::cli::prewarm(args),
        Command::Push(args) => lacquer::cli::push(args),
        Command::Inspect(args) => lacquer::cli::inspect(args),
        Command::Route(args) => lacquer::cli::route(args),
        Command::Stat(args) => lacquer::stat::stat(args),
        Command::Geo {
            command: GeoCommand::Lookup { ip, config },
        } => match lacquer::geo::lookup_command(&ip, config.as_deref()) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn load(
    config: Option<PathBuf>,
    listen: &[SocketAddr],
    origin: &[String],
) -> Result<Config, String> {
    let mut cfg = match config {
        Some(path) => Config::load(&path).map_err(|e| e.to_string())?,
        None => {
            if origin.is_empty() {
                return Err("quick mode needs --origin HOST:PORT (or give --config FILE)".into());
            }
            let first = listen
                .first()
                .copied()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
            Config::quick(first, origin).map_err(|e| e.to_string())?
        }
    };
    if !listen.is_empty() {
        let template = cfg.listen.first().cloned().unwrap_or_default();
        cfg.listen = listen
            .iter()
            .map(|a| {
                let mut l = template.clone();
                l.address = *a;
                l
            })
            .collect();
    }
    if !origin.is_empty() {
        let quick = Config::quick(
            cfg.listen
                .first()
                .map(|l| l.address)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            origin,
        )
        .map_err(|e| e.to_string())?;
        cfg.origin = quick.origin;
    }
    Ok(cfg)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    // stderr, as documented (stdout is for command output); colour only on a terminal,
    // so journald and log shippers get plain lines.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}

fn serve(cfg: Config, demo: bool) -> ExitCode {
    init_logging(&cfg);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        tokio::spawn(return_freed_memory());
        if demo {
            let Some(origin) = cfg.origin.first().and_then(|o| o.address.parse::<SocketAddr>().ok()) else {
                eprintln!("demo: the config's first origin must be an IP:port to listen on");
                return ExitCode::FAILURE;
            };
            match lacquer::demo::serve(origin).await {
                Ok(a) => println!("demo origin on http://{a}"),
                Err(e) => {
                    eprintln!("demo origin cannot listen on {origin}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let running = match lacquer::server::start(cfg).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if demo {
            if let Some(a) = running.listen.first() {
                println!("lacquer on http://{a} — try:\n  curl -si http://{a}/time\n  curl -si http://{a}/slow?ms=2000  (run it twice, or 50 at once)\n\nroutes:\n{}", lacquer::demo::ROUTES);
            }
        }
        lacquer::notify::ready();
        lacquer::notify::spawn_watchdog();
        let live = running.live.clone();
        running.run_until(signals(live)).await;
        ExitCode::SUCCESS
    })
}

/// Serve until SIGTERM or Ctrl-C; SIGHUP reloads the config file (a bad one is refused
/// and logged, the running config stays).
async fn signals(live: std::sync::Arc<lacquer::server::Live>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = hup.recv() => {
                    // Errors are logged (and counted) by reload itself.
                    let _ = live.reload_from_source().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = live;
        let _ = tokio::signal::ctrl_c().await;
    }
    lacquer::notify::stopping();
    tracing::info!("shutting down: draining in-flight requests");
}
