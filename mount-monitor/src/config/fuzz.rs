use super::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;

fn cases() -> u32 {
    crate::proptest_cases(2_000)
}

/// Every key, with values (as JSON) that it accepts, so that most documents get past the
/// first check and exercise the later ones.
type Keys = &'static [(&'static str, &'static [&'static str])];
const KEYS: Keys = &[
    ("checkInterval", &[r#""30s""#, r#""2s""#, r#""1m30s""#]),
    ("readTimeout", &[r#""5s""#, r#""500ms""#]),
    ("timeout", &[r#""1s""#]),
    ("shutdownTimeout", &[r#""30s""#, r#""0s""#]),
    ("failureThreshold", &["1", "3", "0"]),
    ("successThreshold", &["1", "2"]),
    ("httpPort", &["8080", "0", "65535"]),
    (
        "listen",
        &[r#"":8080""#, r#""127.0.0.1:0""#, r#""[::]:9000""#],
    ),
    ("logLevel", &[r#""debug""#, r#""WARN""#]),
    ("logFormat", &[r#""json""#, r#""text""#]),
    ("canaryFile", &[r#"".health-check""#, r#""/x/y""#]),
];
const MOUNT_KEYS: Keys = &[
    ("name", &[r#""media""#, r#""tv""#, r#""""#, r#""a/b""#]),
    (
        "path",
        &[
            r#""/mnt/media""#,
            r#""/mnt/tv/../tv2""#,
            r#""rel""#,
            r#""/""#,
        ],
    ),
    ("canaryFile", &[r#""ok""#, r#""/abs""#]),
    ("checkType", &[r#""canary""#, r#""directory""#, r#""none""#]),
    ("failureThreshold", &["0", "2"]),
    ("successThreshold", &["0", "3"]),
    ("fsType", &[r#""fuse.rclone""#, r#""""#]),
    ("requireMountpoint", &["true", "false"]),
    ("expect", &[r#""rw""#, r#""ro""#, r#""any""#]),
    ("minFree", &[r#""5%""#, r#""512MiB""#, "1000000", r#""0%""#]),
    ("minFreeInodes", &[r#""2%""#, "10000"]),
];

/// Values near and far from what each key accepts.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-3i64..100_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(
            &[
                "30s",
                "1s",
                "500ms",
                "0s",
                "1m30s",
                "-5s",
                "5",
                "18446744073709551615s",
                "9999999999999h",
                "5%",
                "-1%",
                "101%",
                "NaN%",
                "512MiB",
                "10GB",
                "99999999 EiB",
                ":8080",
                "0.0.0.0:80",
                "[::]:8080",
                ":99999",
                "rw",
                "ro",
                "any",
                "canary",
                "directory",
                "none",
                "json",
                "text",
                "debug",
                "/mnt/a",
                "a/b",
                "",
                " ",
                "..",
            ][..]
        )
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

/// A key and its value: mostly a known key with a value it accepts, sometimes a known key
/// with any value, rarely an unknown key.
fn entry(keys: Keys) -> impl Strategy<Value = (String, Value)> {
    let known = move || prop::sample::select(keys);
    prop_oneof![
        12 => known().prop_flat_map(|(key, values)| {
            prop::sample::select(values).prop_map(move |v| {
                (key.to_owned(), serde_json::from_str(v).expect("valid JSON in the table"))
            })
        }),
        4 => (known().prop_map(|(key, _)| key.to_owned()), scalar()),
        1 => ("[a-zA-Z]{1,12}", scalar()),
    ]
}

fn object(keys: Keys, len: std::ops::Range<usize>) -> impl Strategy<Value = Value> {
    vec(entry(keys), len).prop_map(|entries| Value::Object(entries.into_iter().collect()))
}

fn mount() -> impl Strategy<Value = Value> {
    object(MOUNT_KEYS, 0..8)
}

fn document() -> impl Strategy<Value = Value> {
    (
        object(KEYS, 0..6),
        prop::option::of(vec(mount(), 0..4)),
        prop::option::of(btree_map(
            prop::sample::select(&["enabled", "restartDelay", "maxRetries", "x"][..]),
            scalar(),
            0..3,
        )),
    )
        .prop_map(|(top, mounts, watchdog)| {
            let Value::Object(mut doc) = top else {
                unreachable!("object() makes objects")
            };
            if let Some(mounts) = mounts {
                doc.insert("mounts".into(), Value::Array(mounts));
            }
            if let Some(w) = watchdog {
                let w = w.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                doc.insert("watchdog".into(), Value::Object(w));
            }
            Value::Object(doc)
        })
}

/// The same document as TOML, written by hand: the `toml` crate is built without its
/// serializer.
fn to_toml(doc: &Value) -> String {
    fn value(v: &Value) -> Option<String> {
        match v {
            Value::Null | Value::Object(_) => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => None,
            Value::Number(n) if n.is_f64() && !n.to_string().contains(['.', 'e', 'E']) => {
                Some(format!("{n}.0"))
            }
            Value::Number(n) => Some(n.to_string()),
            // A JSON string literal is a TOML basic string.
            Value::String(_) => Some(v.to_string()),
            Value::Array(items) => {
                let items: Vec<String> = items.iter().filter_map(value).collect();
                Some(format!("[{}]", items.join(", ")))
            }
        }
    }
    fn table(out: &mut String, map: &serde_json::Map<String, Value>) {
        for (k, v) in map {
            if let Some(v) = value(v) {
                out.push_str(&format!("{} = {v}\n", Value::from(k.as_str())));
            }
        }
    }
    let mut out = String::new();
    let Value::Object(doc) = doc else {
        return out;
    };
    table(&mut out, doc);
    if let Some(Value::Object(w)) = doc.get("watchdog") {
        out.push_str("[watchdog]\n");
        table(&mut out, w);
    }
    if let Some(Value::Array(mounts)) = doc.get("mounts") {
        for m in mounts {
            out.push_str("[[mounts]]\n");
            if let Value::Object(m) = m {
                table(&mut out, m);
            }
        }
    }
    out
}

/// The environment and flags as clap hands them over: values that parse (those that do not
/// stop clap, `cli::tests`).
fn overrides() -> impl Strategy<Value = Overrides> {
    fn parsed<T: std::str::FromStr + std::fmt::Debug>() -> impl Strategy<Value = Option<T>> {
        prop_oneof![
            scalar().prop_map(|v| v.as_str().map_or(v.to_string(), str::to_owned)),
            any::<String>()
        ]
        .prop_map(|text| text.parse().ok())
    }
    (
        vec(any::<String>(), 0..3),
        parsed::<Listen>(),
        prop::option::of(any::<u16>()),
        parsed::<GoDuration>(),
        parsed::<GoDuration>(),
        prop::option::of(any::<i64>()),
        parsed::<LogLevel>(),
        parsed::<LogFormat>(),
    )
        .prop_map(
            |(
                mounts,
                listen,
                http_port,
                check_interval,
                timeout,
                failure_threshold,
                log_level,
                log_format,
            )| Overrides {
                mounts,
                listen: listen.into_iter().collect(),
                http_port,
                check_interval,
                timeout,
                failure_threshold,
                log_level,
                log_format,
                ..Overrides::default()
            },
        )
}

/// Loads `text` as the file `name` would be: settings, or one line naming the file.
fn load_text(text: &str, name: &str, cli: &Overrides) -> Result<(), TestCaseError> {
    let path = Path::new(name);
    let result = parse_file(text, path).and_then(|file| resolve(file, Some(path), cli));
    if let Err(ConfigError(message)) = result {
        prop_assert!(!message.contains('\n'), "more than one line: {message:?}");
        prop_assert!(
            message.contains(name) || message.contains("--") || message.contains("(default)"),
            "names no file, key or flag: {message:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        load_text(&text, "config.json", &Overrides::default())?;
        load_text(&text, "config.toml", &Overrides::default())?;
    }

    #[test]
    fn structured_json_never_panics(doc in document(), cli in overrides()) {
        load_text(&doc.to_string(), "config.json", &Overrides::default())?;
        load_text(&doc.to_string(), "config.json", &cli)?;
    }

    #[test]
    fn structured_toml_never_panics(doc in document(), cli in overrides()) {
        load_text(&to_toml(&doc), "config.toml", &Overrides::default())?;
        load_text(&to_toml(&doc), "config.toml", &cli)?;
    }
}
