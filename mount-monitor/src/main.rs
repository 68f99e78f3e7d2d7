use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use mount_monitor::cli::{self, Cli, Command, Format};
use mount_monitor::config::{self, Settings};
use mount_monitor::limits::ConnectionLimits;
use mount_monitor::monitor::{self, Shared};
use mount_monitor::{VERSION, healthcheck, http, logging, report, server};

/// musl's own malloc serializes every allocation on one lock (see mount-monitor/Cargo.toml).
#[cfg(all(target_env = "musl", feature = "dlmalloc"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Exit codes: 0 fine, 1 unhealthy or failed, 2 bad configuration.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("mount-monitor: {}", cli::one_line(&e));
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let overrides = cli.options.overrides();

    if let Some(Command::Healthcheck { url }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| {
            let listen = config::load(&overrides)
                .map(|(s, _)| s.listen)
                .unwrap_or_else(|_| Settings::default().listen);
            format!("http://{}/readyz", local_address(listen))
        });
        return match healthcheck::run(&url, Duration::from_secs(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mount-monitor healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let (settings, warnings) = match config::load(&overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("mount-monitor: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    logging::init(&settings);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    raise_open_file_limit();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(1024)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mount-monitor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let check_format = match cli.command {
        Some(Command::Check { format }) => Some(format),
        _ if cli.options.init_container_mode => Some(Format::Table),
        _ => None,
    };
    let code = match check_format {
        Some(format) => runtime.block_on(check(&settings, format)),
        None => runtime.block_on(serve(settings)),
    };
    // A probe stuck in the kernel must not hold up the exit.
    runtime.shutdown_background();
    code
}

/// The address to reach a server listening on `listen` from this host.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

async fn check(settings: &Settings, format: Format) -> ExitCode {
    let views = monitor::check_once(settings).await;
    let ok = views
        .iter()
        .all(|v| v.state.health == mount_monitor::state::Health::Healthy);
    match format {
        Format::Table => print!("{}", report::table(&views)),
        Format::Json => {
            let body = http::StatusBody::new(views.iter(), ok, monitor::blocked_checks());
            match serde_json::to_string_pretty(&body) {
                Ok(json) => println!("{json}"),
                Err(e) => eprintln!("mount-monitor: {e}"),
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let listener = match server::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(listen = %settings.listen, error = %e, "cannot listen; choose another address with --listen");
            eprintln!(
                "mount-monitor: cannot listen on {}: {e}; choose another address with --listen",
                settings.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(settings.listen);
    let limits = ConnectionLimits::new(
        server::connection_limit(settings.max_connections),
        settings.max_connections_per_peer,
    );
    let settings = Arc::new(settings);
    tracing::info!(
        version = VERSION,
        listen = %address,
        mounts = settings.mounts.len(),
        mode = if settings.mounts.is_empty() { "discovery" } else { "configured" },
        config = %settings.config_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        check_interval = ?settings.check_interval,
        timeout = ?settings.timeout,
        max_connections = limits.total(),
        max_connections_per_peer = limits.per_peer(),
        "mount-monitor started"
    );
    let shared = Shared::new(Arc::clone(&settings));
    monitor::start(Arc::clone(&shared));
    server::serve(
        listener,
        http::router(shared),
        shutdown_signal(),
        settings.shutdown_timeout,
        limits,
    )
    .await;
    tracing::info!("mount-monitor stopped");
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
}

/// Many idle clients must not exhaust the default soft limit of 1024 descriptors.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536), hard);
    }
}
