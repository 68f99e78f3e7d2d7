use super::*;
use std::net::SocketAddr;
use std::time::Duration;

fn from_json(json: &str, cli: Overrides) -> Result<Settings, ConfigError> {
    let file = parse_file(json, Path::new("config.json"))?;
    resolve(file, Some(Path::new("config.json")), &cli)
}

const DEBRID_EXAMPLE: &str =
    include_str!("../../../tests/fixtures/debrid-mount-monitor.config.example.json");

#[test]
fn debrid_example_loads_unchanged() {
    let s = from_json(DEBRID_EXAMPLE, Overrides::default()).unwrap();
    assert_eq!(s.check_interval, Duration::from_secs(30));
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert_eq!(s.failure_threshold, 3);
    assert_eq!(s.listen[0].port(), 8080);
    assert_eq!(s.log_format, Some(LogFormat::Json));
    assert_eq!(s.mounts.len(), 2);
    let movies = &s.mounts[0];
    assert_eq!(movies.name.as_deref(), Some("movies"));
    assert_eq!(
        movies.check,
        DataCheck::Canary(PathBuf::from("/mnt/movies/.health-check"))
    );
    let tv = &s.mounts[1];
    assert_eq!(tv.check, DataCheck::Directory);
    assert_eq!(tv.failure_threshold, 5);
}

#[test]
fn metrics_detail_from_file_and_flag() {
    let basic = from_json("{}", Overrides::default()).unwrap();
    assert_eq!(basic.metrics_detail, MetricsDetail::Basic, "the default");
    let file = r#"{"metricsDetail": "full"}"#;
    let full = from_json(file, Overrides::default()).unwrap();
    assert_eq!(full.metrics_detail, MetricsDetail::Full);
    let flag = Overrides {
        metrics_detail: Some(MetricsDetail::Basic),
        ..Default::default()
    };
    assert_eq!(
        from_json(file, flag).unwrap().metrics_detail,
        MetricsDetail::Basic,
        "the flag wins over the file"
    );
    let ConfigError(message) =
        from_json(r#"{"metricsDetail": "all"}"#, Overrides::default()).unwrap_err();
    assert_eq!(
        message,
        "config file config.json: `metricsDetail`: \"all\" is not a metrics detail; use basic (about 16 series per mount) or full (about 50)"
    );
}

#[test]
fn worker_threads_from_file_and_flags() {
    let s = from_json("{}", Overrides::default()).unwrap();
    assert_eq!(s.worker_threads, default_worker_threads());
    let s = from_json(r#"{"workerThreads":8}"#, Overrides::default()).unwrap();
    assert_eq!(s.worker_threads, 8);
    let cli = Overrides {
        worker_threads: Some(4),
        ..Default::default()
    };
    assert_eq!(
        from_json(r#"{"workerThreads":8}"#, cli)
            .unwrap()
            .worker_threads,
        4
    );
    let error = from_json(r#"{"workerThreads":65}"#, Overrides::default())
        .unwrap_err()
        .0;
    assert_eq!(
        error,
        "config file config.json: `workerThreads`: 65 is more than 64, the most that can help (checks run on threads of their own); set it to 64 or less"
    );
    let cli = Overrides {
        worker_threads: Some(0),
        ..Default::default()
    };
    let error = from_json("{}", cli).unwrap_err().0;
    assert!(
        error.starts_with("--worker-threads: 0 would leave"),
        "{error}"
    );
}

#[test]
fn connection_limits_from_file_and_flags() {
    let s = from_json("{}", Overrides::default()).unwrap();
    assert_eq!(s.max_connections_per_peer, crate::limits::DEFAULT_PER_PEER);
    assert_eq!(s.max_connections, crate::server::DEFAULT_MAX_CONNECTIONS);
    let json = r#"{"maxConnections":500,"maxConnectionsPerPeer":8}"#;
    let s = from_json(json, Overrides::default()).unwrap();
    assert_eq!((s.max_connections, s.max_connections_per_peer), (500, 8));
    let cli = Overrides {
        max_connections_per_peer: Some(16),
        ..Default::default()
    };
    assert_eq!(from_json(json, cli).unwrap().max_connections_per_peer, 16);
    let error = from_json(r#"{"maxConnectionsPerPeer":0}"#, Overrides::default())
        .unwrap_err()
        .0;
    assert!(error.contains("`maxConnectionsPerPeer`: 0"), "{error}");
    let cli = Overrides {
        max_connections: Some(0),
        ..Default::default()
    };
    assert!(
        from_json("{}", cli)
            .unwrap_err()
            .0
            .starts_with("--max-connections: 0")
    );
}

#[test]
fn toml_uses_the_same_keys() {
    let text = r#"
checkInterval = "10s"
readTimeout = "2s"
[[mounts]]
name = "media"
path = "/mnt/media"
checkType = "none"
fsType = "fuse.rclone"
expect = "rw"
minFree = "5%"
minFreeInodes = 1000
"#;
    let file = parse_file(text, Path::new("c.toml")).unwrap();
    let s = resolve(file, None, &Overrides::default()).unwrap();
    assert_eq!(s.check_interval, Duration::from_secs(10));
    let m = &s.mounts[0];
    assert_eq!(m.fs_type.as_deref(), Some("fuse.rclone"));
    assert_eq!(m.expect, Expect::ReadWrite);
    assert_eq!(m.min_free, Some(Floor::Percent(5.0)));
    assert_eq!(m.min_free_inodes, Some(Floor::Absolute(1000)));
    assert_eq!(m.check, DataCheck::None);
}

#[test]
fn precedence_defaults_file_then_overrides() {
    let json = r#"{"checkInterval":"20s","httpPort":9000,"logLevel":"warn"}"#;
    let s = from_json(json, Overrides::default()).unwrap();
    assert_eq!(s.check_interval, Duration::from_secs(20));
    assert_eq!(s.listen[0].port(), 9000);
    assert_eq!(s.log_level, LogLevel::Warn);
    assert_eq!(s.timeout, Duration::from_secs(5), "default kept");

    let cli = Overrides {
        check_interval: Some("40s".parse().unwrap()),
        http_port: Some(9100),
        ..Default::default()
    };
    let s = from_json(json, cli).unwrap();
    assert_eq!(s.check_interval, Duration::from_secs(40));
    assert_eq!(s.listen[0].port(), 9100);
    assert_eq!(s.log_level, LogLevel::Warn);

    let cli = Overrides {
        listen: vec!["127.0.0.1:7000".parse().unwrap()],
        http_port: Some(9100),
        ..Default::default()
    };
    assert_eq!(
        from_json(json, cli).unwrap().listen,
        ["127.0.0.1:7000".parse().unwrap()]
    );
}

#[test]
fn mount_flags() {
    let cli = Overrides {
        mounts: vec!["media=/mnt/media/".into(), "/srv/data".into()],
        ..Default::default()
    };
    let s = resolve(FileConfig::default(), None, &cli).unwrap();
    assert_eq!(s.mounts[0].label(), "media");
    assert_eq!(s.mounts[0].path, Path::new("/mnt/media"));
    assert_eq!(s.mounts[1].name, None);
    assert_eq!(s.mounts[1].label(), "/srv/data");
    assert_eq!(s.mounts[1].check, DataCheck::None);
}

fn flags(mounts: &[&str]) -> Result<Vec<MountSpec>, ConfigError> {
    let cli = Overrides {
        mounts: mounts.iter().map(|m| (*m).to_owned()).collect(),
        ..Default::default()
    };
    resolve(FileConfig::default(), None, &cli).map(|s| s.mounts)
}

#[test]
fn every_per_mount_option_can_be_a_flag() {
    let m = flags(&[
        "media=/mnt/media,fstype=fuse.rclone,min-free=5%,min-free-inodes=1000,expect=ro,require-mountpoint=true,failure-threshold=2,success-threshold=3",
    ])
    .unwrap();
    assert_eq!(m.len(), 1);
    let m = &m[0];
    assert_eq!(m.label(), "media");
    assert_eq!(m.path, Path::new("/mnt/media"));
    assert_eq!(m.fs_type.as_deref(), Some("fuse.rclone"));
    assert_eq!(m.min_free, Some(Floor::Percent(5.0)));
    assert_eq!(m.min_free_inodes, Some(Floor::Absolute(1000)));
    assert_eq!(m.expect, Expect::ReadOnly);
    assert_eq!(m.placement, Placement::MountPoint);
    assert_eq!((m.failure_threshold, m.success_threshold), (2, 3));
    assert_eq!(m.check, DataCheck::None);

    let m = &flags(&["name=backup,path=/mnt/backup,canary=.mounted"]).unwrap()[0];
    assert_eq!(m.label(), "backup");
    assert_eq!(
        m.check,
        DataCheck::Canary(PathBuf::from("/mnt/backup/.mounted"))
    );
    let m = &flags(&["/srv/x,require-mountpoint=false,check=directory"]).unwrap()[0];
    assert_eq!(
        (m.placement, &m.check),
        (Placement::Anywhere, &DataCheck::Directory)
    );
    assert_eq!(flags(&["/srv/x"]).unwrap()[0].placement, Placement::Mounted);
}

#[test]
fn paths_with_commas_and_equals_signs_still_work() {
    let m = flags(&["media=/mnt/a=b,c,fstype=nfs4"]).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].path, Path::new("/mnt/a=b,c"));
    assert_eq!(m[0].fs_type.as_deref(), Some("nfs4"));
    let m = flags(&["path=/srv/x,y=z"]).unwrap();
    assert_eq!(m[0].path, Path::new("/srv/x,y=z"));
}

#[test]
fn one_value_holds_several_mounts() {
    // The environment variable's forms: `;` or a newline between mounts, and the old
    // comma-separated list of paths.
    for value in [
        "a=/x,fstype=tmpfs;b=/y",
        "a=/x,fstype=tmpfs\nb=/y",
        "a=/x,fstype=tmpfs,b=/y",
    ] {
        let m = flags(&[value]).unwrap();
        let got: Vec<(String, &Path, Option<&str>)> = m
            .iter()
            .map(|m| (m.label(), m.path.as_path(), m.fs_type.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_owned(), Path::new("/x"), Some("tmpfs")),
                ("b".to_owned(), Path::new("/y"), None)
            ],
            "{value:?}"
        );
    }
    assert_eq!(flags(&["/x,/y"]).unwrap().len(), 2);
}

#[test]
fn bad_mount_options_say_what_is_wrong() {
    for (value, needle) in [
        ("media=/m,min-free=lots", "`minFree`"),
        ("media=/m,require-mountpoint=maybe", "true, false or auto"),
        ("media=/m,failure-threshold=x", "not a whole number"),
        ("name=media", "expected PATH"),
    ] {
        let e = flags(&[value]).unwrap_err().0;
        assert!(e.contains(needle), "{value}: {e}");
        assert!(e.contains("--mount"), "{value}: {e}");
    }
}

fn error_of(json: &str) -> String {
    from_json(json, Overrides::default()).unwrap_err().0
}

#[test]
fn every_error_class_names_what_is_wrong() {
    let cases = [
        (r#"{"checkInterval": "#, "config.json"),
        (r#"{"checkInterval":"often"}"#, "`checkInterval`"),
        (r#"{"checkInterval":5}"#, "`checkInterval`"),
        (
            r#"{"mounts":[{"path":"/x","failureThreshold":-2}]}"#,
            "`mounts[0].failureThreshold`: -2 must be",
        ),
        (r#"{"mounts":[{"name":"a"}]}"#, "`mounts[0].path`"),
        (r#"{"httpPort":70000}"#, "`httpPort`: 70000 is not a port"),
        (r#"{"httpPort":"80"}"#, "`httpPort`"),
        ("[]", "config.json"),
        (r#"{"listen":"nope"}"#, "`listen`"),
        (
            r#"{"checkInterval":"100ms"}"#,
            "`checkInterval`: 100ms is below the 200ms minimum",
        ),
        (
            r#"{"checkInterval":"18446744073709551615s"}"#,
            "`checkInterval`: \"18446744073709551615s\" is longer than the 24h maximum",
        ),
        (
            r#"{"readTimeout":"30s"}"#,
            "config file config.json: `readTimeout`: 30s must be at least 100ms and below the check interval (30s by default)",
        ),
        (
            r#"{"checkInterval":"10s","readTimeout":"20s"}"#,
            "`readTimeout`: 20s must be at least 100ms and below the check interval (10s from `checkInterval`)",
        ),
        (
            r#"{"mounts":[{"path":"/x","checkType":"ping"}]}"#,
            "`mounts[0].checkType`",
        ),
        (
            r#"{"mounts":[{"path":"/x","minFree":"lots"}]}"#,
            "`mounts[0].minFree`",
        ),
        (
            r#"{"mounts":[{"path":"/x","expect":"rx"}]}"#,
            "`mounts[0].expect`",
        ),
        (
            r#"{"watchdog":{"enabled":true,"restartDelay":"soon"}}"#,
            "`watchdog.restartDelay`: \"soon\" is not a duration",
        ),
        (r#"{"watchdog":{"minPodAge":"5"}}"#, "`watchdog.minPodAge`"),
        (r#"{"logLevel":"loud"}"#, "`logLevel`"),
    ];
    for (json, needle) in cases {
        let message = error_of(json);
        assert!(message.contains(needle), "{json}: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

/// config.json as debrid-mount-monitor's Go code reads it (docs/migrating.md).
#[test]
fn json_is_read_with_go_rules() {
    let load = |json: &str| {
        let file = parse_file(json, Path::new("config.json")).unwrap();
        let ignored = file.ignored.clone();
        let s = resolve(file, Some(Path::new("config.json")), &Overrides::default()).unwrap();
        (s, ignored)
    };
    // Keys in any case, unknown keys warned about, the last of a repeated key.
    let (s, ignored) = load(
        r#"{"$schema": "https://example.com/s.json", "HttpPort": 9000, "debounceThreshold": 2,
            "FAILURETHRESHOLD": 4, "failureThreshold": 5,
            "mounts": [{"Name": "a/b", "PATH": "/mnt/a", "checkType": ""},
                       {"name": "a/b", "path": "./data/local", "CanaryFile": ""}]}"#,
    );
    assert_eq!(s.listen[0].port(), 9000);
    assert_eq!(s.failure_threshold, 5);
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(
        ignored[0].starts_with("config file config.json: unknown key `$schema` ignored"),
        "{ignored:?}"
    );
    assert!(
        ignored[1].ends_with("did you mean `failureThreshold`?"),
        "{ignored:?}"
    );
    assert_eq!(s.mounts[0].name.as_deref(), Some("a/b"));
    assert_eq!(
        s.mounts[0].check,
        DataCheck::Canary("/mnt/a/.health-check".into())
    );
    assert_eq!(s.mounts[1].shown_path, "./data/local");
    assert!(s.mounts[1].path.is_absolute());
    assert_eq!(
        s.mounts[1].check,
        DataCheck::Canary(s.mounts[1].path.join(".health-check"))
    );
    assert_eq!(duplicate_names(&s.mounts).len(), 1);

    // Zero means the default.
    let (s, _) = load(
        r#"{"httpPort": 0, "failureThreshold": 0, "canaryFile": "", "checkInterval": "0s",
            "readTimeout": "-1s", "shutdownTimeout": "0", "logLevel": "", "logFormat": "",
            "mounts": [{"path": "/m", "failureThreshold": 0}]}"#,
    );
    let defaults = Settings::default();
    assert_eq!(s.listen, defaults.listen);
    assert_eq!(s.failure_threshold, 3);
    assert_eq!(s.check_interval, defaults.check_interval);
    assert_eq!(s.timeout, defaults.timeout);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(s.log_level, LogLevel::Info);
    assert_eq!(s.log_format, None);
    assert_eq!(s.mounts[0].failure_threshold, 3);
    assert_eq!(
        s.mounts[0].check,
        DataCheck::Canary("/m/.health-check".into())
    );
    let (s, _) = load(r#"{"checkInterval": "-5s", "failureThreshold": -1, "httpPort": -1}"#);
    assert_eq!(s.check_interval, defaults.check_interval);
    assert_eq!(s.failure_threshold, 3);

    // Go's duration syntax.
    let (s, _) = load(r#"{"checkInterval": "1m30s", "readTimeout": "1.5s"}"#);
    assert_eq!(s.check_interval, Duration::from_secs(90));
    assert_eq!(s.timeout, Duration::from_millis(1500));
    let (s, _) = load(r#"{"readTimeout": "500000µs", "checkInterval": "2000000μs"}"#);
    assert_eq!(s.timeout, Duration::from_millis(500));
    assert_eq!(s.check_interval, Duration::from_secs(2));
    let (s, _) = load(
        r#"{"mounts": [{"path": "/m", "checkType": "directory"}, {"path": "/n", "checkType": "list"}]}"#,
    );
    assert_eq!(s.mounts[0].check, DataCheck::Directory);
    assert_eq!(s.mounts[1].check, DataCheck::List);
}

#[test]
fn toml_stays_strict() {
    for (text, needle) in [
        ("bogus = 1", "unknown field `bogus`"),
        ("HttpPort = 1", "unknown field `HttpPort`"),
        ("failureThreshold = 0", "`failureThreshold`: 0 must be"),
        ("checkInterval = \"-5s\"", "negative"),
    ] {
        let e = parse_file(text, Path::new("c.toml"))
            .and_then(|file| resolve(file, Some(Path::new("c.toml")), &Overrides::default()))
            .unwrap_err();
        assert!(e.0.contains(needle), "{text}: {}", e.0);
    }
}

#[test]
fn init_container_mode_skips_the_serving_checks() {
    let json = r#"{"checkInterval": "100ms", "readTimeout": "5s", "watchdog": {"enabled": true}}"#;
    assert!(from_json(json, Overrides::default()).is_err());
    let once = Overrides {
        init_container_mode: true,
        ..Default::default()
    };
    let s = from_json(json, once.clone()).unwrap();
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert!(from_json(r#"{"httpPort": 70000}"#, once.clone()).is_ok());
    // The timeout is still checked: a round needs one.
    assert!(from_json(r#"{"readTimeout": "50ms"}"#, once).is_err());
}

#[test]
fn listen_takes_several_addresses_and_go_ports() {
    let cli = Overrides {
        listen: vec![
            "127.0.0.1:1, [::1]:2".parse().unwrap(),
            ":3".parse().unwrap(),
        ],
        ..Default::default()
    };
    let s = from_json("{}", cli).unwrap();
    let want: Vec<SocketAddr> = ["127.0.0.1:1", "[::1]:2", "[::]:3"]
        .map(|a| a.parse().unwrap())
        .to_vec();
    assert_eq!(s.listen, want);
    assert_eq!(Settings::default().listen, ["[::]:8080".parse().unwrap()]);
    let cli = Overrides {
        http_port: Some(0),
        ..Default::default()
    };
    assert_eq!(
        from_json(r#"{"httpPort": 9000}"#, cli).unwrap().listen[0].port(),
        9000
    );
}

/// A port applies to the addresses of its own source or a lower one; addresses from a higher
/// source make a lower port moot; within one source the addresses win.
#[test]
fn ports_and_addresses_across_sources() {
    let addresses = |json: &str, cli: Overrides| -> Vec<String> {
        let s = from_json(json, cli).unwrap();
        s.listen.iter().map(ToString::to_string).collect()
    };
    let file = r#"{"listen": "127.0.0.1:1,[::1]:2", "httpPort": 9000}"#;
    assert_eq!(
        addresses(file, Overrides::default()),
        ["127.0.0.1:1", "[::1]:2"]
    );
    let port = Overrides {
        http_port: Some(7000),
        ..Default::default()
    };
    assert_eq!(addresses(file, port), ["127.0.0.1:7000", "[::1]:7000"]);
    let listen = Overrides {
        listen: vec!["127.0.0.3:3".parse().unwrap()],
        ..Default::default()
    };
    assert_eq!(addresses(r#"{"httpPort": 9000}"#, listen), ["127.0.0.3:3"]);
    assert_eq!(
        addresses(r#"{"httpPort": 9000}"#, Overrides::default()),
        ["[::]:9000"]
    );
}

#[test]
fn disabled_watchdog_is_accepted() {
    let json = r#"{"watchdog":{"enabled":false,"restartDelay":"30s","maxRetries":3,"retryBackoffInitial":"1s","retryBackoffMax":"1m"}}"#;
    let s = from_json(json, Overrides::default()).unwrap();
    assert!(!s.watchdog.enabled);
    assert_eq!(s.watchdog.restart_delay, Duration::from_secs(30));
}

#[test]
fn watchdog_keys_and_defaults() {
    let s = from_json(r#"{"watchdog":{"enabled":true}}"#, Overrides::default()).unwrap();
    assert_eq!(
        s.watchdog,
        WatchdogSettings {
            enabled: true,
            ..WatchdogSettings::default()
        }
    );
    assert_eq!(s.watchdog.max_retries, 3);
    assert_eq!(s.watchdog.retry_backoff_initial, Duration::from_millis(100));
    assert_eq!(s.watchdog.retry_backoff_max, Duration::from_secs(10));
    assert_eq!(s.watchdog.min_pod_age, Duration::ZERO, "opt-in");
    assert_eq!(s.watchdog.restart_delay, Duration::ZERO);
    assert!(!Settings::default().watchdog.enabled, "off by default");

    let json = r#"{"watchdog":{"enabled":true,"restartDelay":"2s","maxRetries":5,
        "retryBackoffInitial":"250ms","retryBackoffMax":"4s","minPodAge":"10m"}}"#;
    let w = from_json(json, Overrides::default()).unwrap().watchdog;
    assert_eq!(
        w,
        WatchdogSettings {
            enabled: true,
            restart_delay: Duration::from_secs(2),
            max_retries: 5,
            retry_backoff_initial: Duration::from_millis(250),
            retry_backoff_max: Duration::from_secs(4),
            min_pod_age: Duration::from_secs(600),
        }
    );
}

#[test]
fn watchdog_zero_means_default_except_min_pod_age() {
    let json = r#"{"watchdog":{"enabled":true,"restartDelay":"0s","maxRetries":0,
        "retryBackoffInitial":"0s","retryBackoffMax":"0s","minPodAge":"0s"}}"#;
    let w = from_json(json, Overrides::default()).unwrap().watchdog;
    assert_eq!(
        w,
        WatchdogSettings {
            enabled: true,
            min_pod_age: Duration::ZERO,
            ..WatchdogSettings::default()
        }
    );
    let w = from_json(r#"{"watchdog":{"maxRetries":-4}}"#, Overrides::default())
        .unwrap()
        .watchdog;
    assert_eq!(w.max_retries, 3);
}

#[test]
fn watchdog_backoff_is_checked_only_for_serving() {
    let json = r#"{"watchdog":{"enabled":true,"retryBackoffInitial":"20s"}}"#;
    let s = from_json(json, Overrides::default()).expect("loads for `check`");
    let e = s.check_serve().unwrap_err().0;
    assert!(
        e.contains("`watchdog.retryBackoffMax`: 10s is below `watchdog.retryBackoffInitial` (20s)"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    assert!(Settings::default().check_serve().is_ok());
}

#[test]
fn bad_flags_are_errors() {
    // Values that do not parse (`--timeout 5`, `--listen localhost`) stop clap before this:
    // `cli::tests::bad_values_name_their_flag`.
    let bad = [
        Overrides {
            timeout: Some("-5s".parse().unwrap()),
            ..Default::default()
        },
        Overrides {
            check_interval: Some("100ms".parse().unwrap()),
            ..Default::default()
        },
        Overrides {
            mounts: vec!["name=".into()],
            ..Default::default()
        },
        Overrides {
            failure_threshold: Some(0),
            ..Default::default()
        },
    ];
    for cli in bad {
        let e = resolve(FileConfig::default(), None, &cli).unwrap_err();
        assert!(e.0.contains("--"), "{}", e.0);
    }
}

#[test]
fn file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let e = load(&Overrides {
        config: Some(missing),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.error.0.contains("missing.json"), "{e}");
    assert_eq!(e.origin, Origin::File);

    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 1024 * 1024 + 1]).unwrap();
    let e = load(&Overrides {
        config: Some(big),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.error.0.contains("1 MiB"), "{e}");

    use std::os::unix::fs::PermissionsExt;
    let open = dir.path().join("open.json");
    std::fs::write(&open, r#"{"mounts": [{"path": "/"}]}"#).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (_, warnings) = load(&Overrides {
        config: Some(open),
        ..Default::default()
    })
    .unwrap();
    assert!(warnings[0].contains("world-writable"));
}

/// debrid-mount-monitor requires mounts in its file; discovery is for running without one.
#[test]
fn a_config_file_needs_a_mount() {
    let dir = tempfile::tempdir().unwrap();
    for (name, json) in [
        ("missing.json", r#"{"httpPort": 9000}"#),
        ("null.json", r#"{"mounts": null}"#),
        ("empty.json", r#"{"mounts": []}"#),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, json).unwrap();
        let overrides = Overrides {
            config: Some(path),
            ..Default::default()
        };
        let e = load(&overrides).unwrap_err();
        assert!(
            e.error.0.contains(name) && e.error.0.contains("at least one mount is required"),
            "{e}"
        );
        assert_eq!(e.origin, Origin::File);
        let with_flag = Overrides {
            mounts: vec!["/".to_owned()],
            ..overrides
        };
        let (s, _) = load(&with_flag).unwrap();
        assert_eq!(s.mounts.len(), 1, "{name}");
    }
}

#[test]
fn errors_say_where_they_were_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(
        &path,
        r#"{"checkInterval": "1s", "mounts": [{"path": "/"}]}"#,
    )
    .unwrap();
    let origin = |overrides: Overrides| {
        load(&Overrides {
            config: Some(path.clone()),
            ..overrides
        })
        .unwrap_err()
        .origin
    };
    let flag = Overrides {
        failure_threshold: Some(-1),
        ..Default::default()
    };
    assert_eq!(origin(flag), Origin::CommandLine);
    let bad_mount = Overrides {
        mounts: vec!["/x,min-free=lots".to_owned()],
        ..Default::default()
    };
    assert_eq!(origin(bad_mount), Origin::CommandLine);
    // 2s is a fine timeout alone; over the file's 1s interval the file is what to change.
    let timeout = Overrides {
        timeout: Some("2s".parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(origin(timeout), Origin::File);
}

#[test]
fn floors() {
    assert!(Floor::Percent(5.0).violated(4, 100));
    assert!(!Floor::Percent(5.0).violated(5, 100));
    assert!(!Floor::Percent(5.0).violated(0, 0));
    assert!(Floor::Absolute(10).violated(9, 0));
    assert_eq!(
        "512MiB".parse::<SpaceFloor>().unwrap().0,
        Floor::Absolute(512 << 20)
    );
}

#[test]
fn optional_mounts_from_file_and_flags() {
    let s = from_json(
        r#"{"mounts": [{"name": "media", "path": "/mnt/media"}, {"name": "extra", "path": "/mnt/extra", "optional": true}]}"#,
        Overrides::default(),
    )
    .unwrap();
    assert!(!s.mounts[0].optional, "required unless said otherwise");
    assert!(s.mounts[1].optional);
    let mounts = flags(&[
        "extra=/mnt/extra,optional=true",
        "/mnt/media,optional=false",
    ])
    .unwrap();
    assert!(mounts[0].optional);
    assert!(!mounts[1].optional);
    let ConfigError(message) = flags(&["/mnt/extra,optional=maybe"]).unwrap_err();
    assert_eq!(
        message,
        r#"--mount "/mnt/extra,optional=maybe": `optional`: "maybe" is not a boolean; use true or false"#
    );
}

#[test]
fn wait_timeout_from_file_flag_and_zero() {
    assert_eq!(
        from_json("{}", Overrides::default()).unwrap().wait_timeout,
        None,
        "one round by default"
    );
    let file = r#"{"waitTimeout": "5m"}"#;
    assert_eq!(
        from_json(file, Overrides::default()).unwrap().wait_timeout,
        Some(Duration::from_secs(300))
    );
    let flag = |text: &str| Overrides {
        wait_timeout: Some(text.parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(
        from_json(file, flag("30s")).unwrap().wait_timeout,
        Some(Duration::from_secs(30)),
        "the flag wins over the file"
    );
    assert_eq!(
        from_json(file, flag("0s")).unwrap().wait_timeout,
        None,
        "0s is one round"
    );
    let ConfigError(message) =
        from_json(r#"{"waitTimeout": "-1s"}"#, Overrides::default()).unwrap_err();
    assert!(
        message.starts_with("config file config.json: `waitTimeout`: \"-1s\" is negative"),
        "{message}"
    );
}

/// The field table names each setting's file key and, through the field name, its flag: both must
/// be what the file and clap read, or an error would name a key or flag that does not exist.
#[test]
fn field_table_keys_and_flags_are_the_files_and_claps() {
    use clap::Args;
    let command = Overrides::augment_args(clap::Command::new("mount-monitor"));
    for (name, key) in settings::TABLE {
        let file = parse_file(&format!("{{{key:?}: null}}"), Path::new("config.json")).unwrap();
        assert_eq!(
            file.ignored,
            Vec::<String>::new(),
            "`{key}` is a config.json key"
        );
        let toml = format!("{key} = {:?}", "x");
        let error = parse_file(&toml, Path::new("c.toml")).unwrap_err().0;
        assert!(
            !error.contains("unknown field"),
            "`{key}` is a TOML key: {error}"
        );
        // A setting only the file sets has no flag (`#[arg(skip)]`).
        if let Some(arg) = command.get_arguments().find(|a| a.get_id() == *name) {
            let flag = name.replace('_', "-");
            assert_eq!(arg.get_long(), Some(flag.as_str()), "the flag of `{name}`");
        }
    }
    assert!(
        settings::TABLE.len() >= 10,
        "every setting of the table is checked"
    );
}

/// Two workers where the process may use two CPUs or more, one where it may use only one.
#[test]
fn the_default_workers_follow_the_cpus_the_process_may_use() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(default_worker_threads(), DEFAULT_WORKER_THREADS.min(cpus));
    // A thread of its own, pinned to the first CPU it may use (as `taskset -c N` pins a process).
    let pinned = std::thread::spawn(|| {
        // SAFETY: `set` is a plain bitmask, zeroed and then filled by the libc macros; the calls
        // only read and write it, for the calling thread (pid 0).
        unsafe {
            let mut set: nix::libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<nix::libc::cpu_set_t>();
            assert_eq!(nix::libc::sched_getaffinity(0, size, &mut set), 0);
            let first = (0..nix::libc::CPU_SETSIZE as usize)
                .find(|&cpu| nix::libc::CPU_ISSET(cpu, &set))
                .expect("the thread may run on some CPU");
            nix::libc::CPU_ZERO(&mut set);
            nix::libc::CPU_SET(first, &mut set);
            assert_eq!(nix::libc::sched_setaffinity(0, size, &set), 0);
        }
        default_worker_threads()
    });
    assert_eq!(pinned.join().unwrap(), 1);
}
