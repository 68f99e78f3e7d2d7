use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mount_monitor::cli::{self, Cli, Command, Format};
use mount_monitor::config::{self, Origin, Settings};
use mount_monitor::limits::ConnectionLimits;
use mount_monitor::monitor;
use mount_monitor::snapshot::{self, Shared};
use mount_monitor::{
    VERSION, docker, healthcheck, http, logging, report, server, service_links, watchdog,
};

/// musl's own malloc serializes every allocation on one lock (see mount-monitor/Cargo.toml).
#[cfg(all(target_env = "musl", feature = "mimalloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator measured beside mimalloc (`--no-default-features --features dlmalloc`).
#[cfg(all(target_env = "musl", feature = "dlmalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// The exit code for a configuration error (README, Exit codes): serving exits 1 for the config
/// file's and 2 for the command line's, as debrid-mount-monitor and its flag parser do; its
/// init-container mode 1 for both; `check` 2 for both, since its 1 says a mount is unhealthy.
fn bad_config(command: &Option<Command>, init_container_mode: bool, origin: Origin) -> ExitCode {
    match (command, origin) {
        (Some(Command::Check { .. }), _) => ExitCode::from(2),
        _ if init_container_mode => ExitCode::FAILURE,
        (_, Origin::File) => ExitCode::FAILURE,
        (_, Origin::CommandLine) => ExitCode::from(2),
    }
}

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
                ExitCode::from(2)
            };
        }
    };
    let mut overrides = cli.options.settings.clone();
    // debrid-mount-monitor's one-round mode; the `check` subcommand keeps its own behaviour.
    let init_container_mode =
        overrides.init_container_mode && matches!(cli.command, None | Some(Command::Serve));
    overrides.init_container_mode = init_container_mode;
    let bad_config = |origin| bad_config(&cli.command, init_container_mode, origin);

    if let Some(Command::Healthcheck { url }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| {
            let listen = server_settings(&overrides)
                .map(|s| s.listen)
                .unwrap_or_else(|| Settings::default().listen);
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
            return bad_config(e.origin);
        }
    };
    if cli.options.strict_config && !warnings.is_empty() {
        eprintln!(
            "mount-monitor: --strict-config: {}; fix this, or leave out --strict-config",
            warnings.join("; ")
        );
        return bad_config(Origin::File);
    }
    if init_container_mode && settings.mounts.is_empty() {
        eprintln!(
            "mount-monitor: at least one mount is required in init-container mode; list them under `mounts` in the config file or give --mount"
        );
        return bad_config(Origin::File);
    }
    logging::init(&settings);
    for (key, value) in &links {
        tracing::warn!("{}", service_links::warning(key, value));
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let one_round = init_container_mode || matches!(cli.command, Some(Command::Check { .. }));
    if settings.wait_timeout.is_some() && !one_round {
        tracing::warn!(
            "waitTimeout (--wait-timeout) applies to --init-container-mode and `check` only; a serving monitor ignores it"
        );
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
                return bad_config(Origin::File);
            }
            let docker = if settings.docker_actions {
                let host = std::env::var("DOCKER_HOST").ok();
                match docker::engine::socket_from_docker_host(host.as_deref()) {
                    Ok(socket) => Some(docker::engine::Engine::new(socket)),
                    Err(e) => {
                        eprintln!("mount-monitor: {e}");
                        return bad_config(Origin::CommandLine);
                    }
                }
            } else {
                None
            };
            runtime.block_on(serve(settings, docker))
        }
    };
    // A probe stuck in the kernel must not hold up the exit.
    runtime.shutdown_background();
    code
}

/// The settings of the server a health check asks about. In a container that is the serving
/// mount-monitor at PID 1 (or under its init), read as it read them at its start: its command
/// line, its environment, its working directory for a relative `--config` or `./config.json`.
/// Elsewhere, this process's own options (`own`).
fn server_settings(own: &config::Overrides) -> Option<Settings> {
    let serving = healthcheck::candidates(std::path::Path::new("/proc"))
        .into_iter()
        .find_map(|process| {
            let ignored: Vec<String> =
                service_links::find(process.environment.clone(), &Cli::environment_variables())
                    .into_iter()
                    .map(|(key, _)| key)
                    .collect();
            let cli = Cli::parse_process(process.args, &process.environment, &ignored).ok()?;
            let serves = matches!(cli.command, None | Some(Command::Serve))
                && !cli.options.settings.init_container_mode;
            serves.then_some((cli.options.settings, process.cwd))
        });
    match serving {
        Some((overrides, cwd)) if std::env::set_current_dir(&cwd).is_ok() => {
            config::load(&overrides).ok().map(|(settings, _)| settings)
        }
        _ => config::load(own).ok().map(|(settings, _)| settings),
    }
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
/// log line per mount and one for the verdict; exit 0 when all required mounts are healthy, 1
/// otherwise. With `waitTimeout`, rounds every second until they are, or the time is up.
async fn init_container(settings: &Settings) -> ExitCode {
    let until = wait_until(settings);
    tracing::info!(
        version = VERSION,
        mounts = settings.mounts.len(),
        wait_timeout = settings.wait_timeout.map(|d| format!("{d:?}")),
        "running in init-container mode"
    );
    let mut log = report::RoundLog::new(until);
    let views = monitor::check_until_healthy(settings, until, |views| log.round(views)).await;
    // Optional mounts are reported, but decide nothing.
    if snapshot::all_healthy(&views) {
        tracing::info!(count = views.len(), "all mount checks passed");
        ExitCode::SUCCESS
    } else {
        tracing::error!(
            count = views.len(),
            failing = report::failing(&views),
            "one or more mount checks failed"
        );
        ExitCode::FAILURE
    }
}

/// When the waiting mode stops starting rounds: now, without `waitTimeout` (one round).
fn wait_until(settings: &Settings) -> std::time::Instant {
    let now = std::time::Instant::now();
    settings
        .wait_timeout
        .and_then(|wait| now.checked_add(wait))
        .unwrap_or(now)
}

async fn check(settings: &Settings, format: Format) -> ExitCode {
    // While it waits, one line on stderr each time the set of failing mounts changes.
    let mut shown = String::new();
    let views = monitor::check_until_healthy(settings, wait_until(settings), |views| {
        let failing = report::failing(views);
        if settings.wait_timeout.is_some() && !snapshot::all_healthy(views) && failing != shown {
            eprintln!("mount-monitor check: waiting for {failing}");
            shown = failing;
        }
    })
    .await;
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

async fn serve(settings: Settings, docker: Option<docker::engine::Engine>) -> ExitCode {
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
    let go = mount_monitor::duration::format_go;
    // debrid-mount-monitor's first two lines, which its users' log queries may look for.
    tracing::info!(
        source = %settings.config_file.as_deref().map_or("environment".into(), |p| p.display().to_string()),
        mounts = settings.mounts.len(),
        "configuration loaded"
    );
    let port = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .map_or(0, |a| a.port());
    tracing::info!(
        version = VERSION,
        check_interval = go(settings.check_interval),
        read_timeout = go(settings.timeout),
        shutdown_timeout = go(settings.shutdown_timeout),
        failure_threshold = settings.failure_threshold,
        http_port = port,
        log_level = format!("{:?}", settings.log_level).to_lowercase(),
        log_format = format!(
            "{:?}",
            settings.log_format.unwrap_or(config::LogFormat::Json)
        )
        .to_lowercase(),
        canary_file = settings.canary_file,
        watchdog_enabled = settings.watchdog.enabled,
        watchdog_restart_delay = go(settings.watchdog.restart_delay),
        "starting mount monitor"
    );
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
        let (check_type, canary) = match &spec.check {
            config::DataCheck::Canary(file) => ("canary", Some(file.display().to_string())),
            config::DataCheck::Directory => ("directory", None),
            config::DataCheck::List => ("list", None),
            config::DataCheck::None => ("none", None),
        };
        tracing::info!(
            name = spec.name.as_deref().unwrap_or(""),
            path = spec.shown_path.as_str(),
            check_type,
            failureThreshold = spec.failure_threshold,
            mount = spec.label(),
            readyz = http::readyz_path(&spec.label()),
            canary,
            "mount registered"
        );
    }
    let pod_name_set = std::env::var_os("POD_NAME").is_some_and(|v| !v.is_empty());
    let pod_namespace_set = std::env::var_os("POD_NAMESPACE").is_some_and(|v| !v.is_empty());
    if settings.watchdog.enabled && !(pod_name_set && pod_namespace_set) {
        tracing::warn!(
            pod_name_set,
            pod_namespace_set,
            hint = "set POD_NAME and POD_NAMESPACE env vars via Downward API",
            "watchdog enabled but pod identity not configured"
        );
    }
    let shared = Shared::new(Arc::clone(&settings));
    // The actors hear of every change of health from the first check on: each subscribes
    // before the monitor starts.
    let changes = shared.changes();
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    if let Some(engine) = docker {
        tokio::spawn(docker::run(
            engine,
            Arc::clone(&shared.docker),
            shared.changes(),
            stopping.clone(),
        ));
    }
    let watchdog = tokio::spawn(watchdog::run(
        settings.watchdog.clone(),
        Arc::clone(&shared.watchdog),
        changes,
        stopping,
    ));
    monitor::start(Arc::clone(&shared));
    tracing::info!(port, "http server started");
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
            tracing::info!("monitor shutting down");
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
    tracing::info!("shutdown complete");
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
    // Go's names of the signals, as debrid-mount-monitor logs them.
    let name = tokio::select! {
        _ = term.recv() => "terminated",
        _ = int.recv() => "interrupt",
    };
    tracing::info!(signal = name, "received shutdown signal");
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
