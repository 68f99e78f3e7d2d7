use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mount_monitor::cli::{self, Cli, Command, Format};
use mount_monitor::config::{self, Settings};
use mount_monitor::limits::ConnectionLimits;
use mount_monitor::monitor;
use mount_monitor::snapshot::{self, Shared};
use mount_monitor::{VERSION, healthcheck, http, logging, report, server, service_links, watchdog};

/// musl's own malloc serializes every allocation on one lock (see mount-monitor/Cargo.toml).
#[cfg(all(target_env = "musl", feature = "dlmalloc"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Exit codes: 0 fine, 1 unhealthy or failed, 2 bad configuration (1 in init-container mode,
/// as debrid-mount-monitor exits).
const EXIT_BAD_CONFIG: u8 = 2;

/// tokio's blocking threads, which read mountinfo and render the status and /metrics bodies
/// (never a mount: checks run in `probe_pool`); past this, such work waits its turn. Renders of
/// one body are shared by every request that wants it, so two keep up.
const BLOCKING_THREADS: usize = 2;

fn main() -> ExitCode {
    let links = service_links::find(std::env::vars_os(), &Cli::environment_variables());
    let ignored: Vec<String> = links.iter().map(|(key, _)| key.clone()).collect();
    let cli = match Cli::parse_ignoring(&ignored) {
        Ok(cli) => cli,
        // --help and --version.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("mount-monitor: {}", cli::one_line(&e));
            // A bad value is a bad configuration, which init-container mode exits 1 for.
            let bad_value = matches!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
            );
            return if bad_value && cli::asks_for_init_container_mode(std::env::args_os()) {
                ExitCode::FAILURE
            } else {
                ExitCode::from(EXIT_BAD_CONFIG)
            };
        }
    };
    let mut overrides = cli.options.settings.clone();
    // debrid-mount-monitor's one-round mode; the `check` subcommand keeps its own behaviour.
    let init_container_mode =
        overrides.init_container_mode && matches!(cli.command, None | Some(Command::Serve));
    overrides.init_container_mode = init_container_mode;
    let bad_config = if init_container_mode {
        ExitCode::FAILURE
    } else {
        ExitCode::from(EXIT_BAD_CONFIG)
    };

    if let Some(Command::Healthcheck { url }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| {
            let listen = config::load(&overrides)
                .map(|(s, _)| s.listen)
                .unwrap_or_else(|_| Settings::default().listen);
            let first = listen
                .first()
                .copied()
                .unwrap_or_else(|| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 8080));
            format!("http://{}/readyz", local_address(first))
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
            return bad_config;
        }
    };
    if cli.options.strict_config && !warnings.is_empty() {
        eprintln!(
            "mount-monitor: --strict-config: {}; fix this, or leave out --strict-config",
            warnings.join("; ")
        );
        return bad_config;
    }
    if init_container_mode && settings.mounts.is_empty() {
        eprintln!(
            "mount-monitor: at least one mount is required in init-container mode; list them under `mounts` in the config file or give --mount"
        );
        return bad_config;
    }
    logging::init(&settings);
    for (key, value) in &links {
        tracing::warn!("{}", service_links::warning(key, value));
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    raise_open_file_limit();

    // Threads fixed by design, whatever the node: the workers, a few for reading mountinfo and
    // rendering /metrics, and the checks' own pool (`probe_pool`, bounded by maxBlockedChecks).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(settings.worker_threads)
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mount-monitor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Some(Command::Check { format }) => runtime.block_on(check(&settings, format)),
        _ if init_container_mode => runtime.block_on(init_container(&settings)),
        _ => {
            if let Err(e) = settings.check_serve() {
                // One line, as every other configuration error.
                eprintln!("mount-monitor: {e}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
            runtime.block_on(serve(settings))
        }
    };
    // A probe stuck in the kernel must not hold up the exit.
    runtime.shutdown_background();
    code
}

/// The address to reach a server listening on `listen` from this host. An unspecified address
/// of either family is reached on 127.0.0.1: `[::]` listens dual-stack, or falls back to
/// `0.0.0.0` where IPv6 is off, and IPv4 reaches both.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = if listen.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        listen.ip()
    };
    SocketAddr::new(ip, listen.port())
}

/// debrid-mount-monitor's `--init-container-mode`: one round over the configured mounts, one
/// log line per mount and one for the verdict; exit 0 when all are healthy, 1 otherwise.
async fn init_container(settings: &Settings) -> ExitCode {
    tracing::info!(
        version = VERSION,
        mounts = settings.mounts.len(),
        "running in init-container mode"
    );
    let views = monitor::check_once(settings).await;
    let mut healthy = true;
    for view in &views {
        let name = view.spec.name.as_deref().unwrap_or("");
        let path = view.spec.shown_path.as_str();
        let duration = view
            .state
            .check_duration
            .map(|d| format!("{d:?}"))
            .unwrap_or_default();
        match (&view.state.health, &view.state.failure) {
            (mount_monitor::state::Health::Healthy, _) => {
                tracing::info!(name, path, duration, "mount check passed")
            }
            (_, failure) => {
                healthy = false;
                let error = failure.as_ref().map_or("", |f| f.detail.as_str());
                let reason = failure.as_ref().map_or("error", |f| f.reason.code());
                tracing::error!(name, path, error, reason, duration, "mount check failed");
            }
        }
    }
    if healthy {
        tracing::info!(count = views.len(), "all mount checks passed");
        ExitCode::SUCCESS
    } else {
        tracing::error!(count = views.len(), "one or more mount checks failed");
        ExitCode::FAILURE
    }
}

async fn check(settings: &Settings, format: Format) -> ExitCode {
    let views = monitor::check_once(settings).await;
    let ok = snapshot::all_healthy(&views);
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
    let listeners = match server::bind(&settings.listen) {
        Ok(listeners) => listeners,
        Err((address, e)) => {
            tracing::error!(listen = %address, error = %e, "cannot listen; choose another address with --listen");
            return ExitCode::FAILURE;
        }
    };
    // The addresses as bound (port 0 resolved), comma-separated as --listen takes them.
    let addresses = listeners
        .iter()
        .zip(&settings.listen)
        .map(|(listener, configured)| listener.local_addr().unwrap_or(*configured).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let limits = ConnectionLimits::new(
        server::connection_limit(settings.max_connections),
        settings.max_connections_per_peer,
    );
    let settings = Arc::new(settings);
    tracing::info!(
        version = VERSION,
        listen = %addresses,
        mounts = settings.mounts.len(),
        mode = if settings.mounts.is_empty() { "discovery" } else { "configured" },
        config = %settings.config_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        check_interval = ?settings.check_interval,
        timeout = ?settings.timeout,
        shutdown_timeout = ?settings.shutdown_timeout,
        max_connections = limits.total(),
        max_connections_per_peer = limits.per_peer(),
        worker_threads = settings.worker_threads,
        "mount-monitor started"
    );
    for spec in &settings.mounts {
        let check_type = match &spec.check {
            config::DataCheck::Canary(_) => "canary",
            config::DataCheck::Directory => "directory",
            config::DataCheck::List => "list",
            config::DataCheck::None => "none",
        };
        tracing::info!(
            name = spec.name.as_deref().unwrap_or(""),
            path = spec.shown_path.as_str(),
            check_type,
            failureThreshold = spec.failure_threshold,
            mount = spec.label(),
            readyz = http::readyz_path(&spec.label()),
            "mount registered"
        );
    }
    let shared = Shared::new(Arc::clone(&settings));
    // The watchdog hears of every change of health from the first check on.
    let changes = shared.changes();
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let watchdog = tokio::spawn(watchdog::run(
        settings.watchdog.clone(),
        Arc::clone(&shared.watchdog),
        changes,
        stopping,
    ));
    monitor::start(Arc::clone(&shared));
    let gave_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = {
        let gave_up = Arc::clone(&gave_up);
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                Ok(watchdog::Verdict::ExitForRestart) = watchdog => {
                    gave_up.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _ = stopping_tx.send(true);
        }
    };
    server::serve(
        listeners,
        http::router(shared),
        stop,
        settings.shutdown_timeout,
        limits,
    )
    .await;
    tracing::info!("mount-monitor stopped");
    // The watchdog could not delete the pod: restarting this container is what is left.
    if gave_up.load(std::sync::atomic::Ordering::Relaxed) {
        return ExitCode::FAILURE;
    }
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
