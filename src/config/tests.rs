use std::io::Write;

use super::*;

const ORIGIN: &str = "[[origin]]\naddress = \"127.0.0.1:9000\"\n";

pub(super) fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, "t.toml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

pub(super) fn one_error(text: &str) -> String {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn minimal_config_uses_defaults() {
    let c = Config::parse(ORIGIN, "t.toml").unwrap();
    let expected = Config {
        origin: vec![OriginConfig {
            address: "127.0.0.1:9000".into(),
            ..OriginConfig::default()
        }],
        ..Config::default()
    };
    assert_eq!(c, expected);
    assert_eq!(c.listen[0].address, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.admin.address, "127.0.0.1:6082".parse().unwrap());
    assert_eq!(c.cache.memory, 256 << 20);
    assert_eq!(c.cache.max_object_size, 16 << 20);
    assert_eq!(c.limits.max_header_bytes, 32 << 10);
    assert_eq!(c.origin[0].health.interval, Duration::from_secs(5));
    assert_eq!(c.node.role, Role::Standalone);
    assert_eq!(c.cache.cookie_requests, CookiePolicy::Pass);
    assert_eq!(c.cache.key.query, QueryMode::Keep);
    assert_eq!(c.log.format, LogFormat::Plain);
    assert_eq!(c.source, None);
}

#[test]
fn empty_file_only_lacks_an_origin() {
    assert_eq!(
        one_error(""),
        "t.toml: at least one [[origin]] is required for role standalone"
    );
    // An edge forwards to its tier, not to origins, so defaults alone are valid.
    let c = Config::parse("node.role = \"edge\"", "t.toml").unwrap();
    assert_eq!(c.node.role, Role::Edge);
    assert!(c.origin.is_empty());
    assert_eq!(
        one_error("[node]\nrole = \"shard\"\n"),
        "t.toml:2: at least one [[origin]] is required for role shard"
    );
}

#[test]
fn shipped_config_parses_and_matches_defaults() {
    let text = include_str!("../../conf/lacquer.toml");
    let c = Config::parse(text, "conf/lacquer.toml").unwrap_or_else(|e| panic!("{e}"));
    let expected = Config {
        origin: vec![OriginConfig {
            address: "127.0.0.1:9000".into(),
            ..OriginConfig::default()
        }],
        ..Config::default()
    };
    assert_eq!(c, expected, "shipped file must document the defaults");
}

#[test]
fn shipped_config_sets_every_key() {
    // Each documented key must be present (commented-out optional ones are
    // checked by name), so the file stays a complete reference.
    let text = include_str!("../../conf/lacquer.toml");
    for key in [
        "name",
        "role",
        "pop",
        "address",
        "tls",
        "weight",
        "enabled",
        "path",
        "interval",
        "timeout",
        "fall",
        "rise",
        "expect_status",
        "passive_fall",
        "passive_cooldown",
        "passive_5xx",
        "connect_timeout",
        "first_byte_timeout",
        "between_bytes_timeout",
        "stream_idle_timeout",
        "pool_idle_timeout",
        "pool_max_idle_per_origin",
        "retry",
        "memory",
        "max_object_size",
        "default_grace",
        "default_stale_if_error",
        "default_keep",
        "heuristic_fraction",
        "heuristic_max",
        "hit_for_miss_ttl",
        "coalesce_timeout",
        "stale_on_slow",
        "error_backoff",
        "error_ttl",
        "max_error_ttl",
        "max_waiters",
        "max_variants",
        "cookie_requests",
        "surrogate_control",
        "query",
        "drop_params",
        "ignore_host",
        "max_header_bytes",
        "max_uri_bytes",
        "max_headers",
        "max_body",
        "header_read_timeout",
        "idle_timeout",
        "body_read_timeout",
        "max_connections",
        "h2_max_streams",
        "h2_stream_buffer",
        "h2_max_control_frames_per_sec",
        "drain_timeout",
        "tunnel_idle_timeout",
        "max_tunnels",
        "token_file",
        "open",
        "purge_allowed",
        "level",
        "format",
        "access_log",
        "site_header",
        "trusted_proxies",
        "unkeyed_headers",
        "mmdb",
        "pops",
        "action",
        "default_pop",
        "health_interval",
        "health_timeout",
        "reload_interval",
        "peers",
        "health_path",
        "health_port",
        "health_interval",
        "health_timeout",
        "ramp_up",
        "fanout_timeout",
        "fanout_retries",
        "purge_log_size",
        "hot_key_threshold",
        "min_size",
        "types",
        "store",
        "brotli_level",
        "gzip_level",
        "on_the_fly",
        "on_the_fly_brotli_level",
        "on_the_fly_gzip_level",
        "on_the_fly_max_streams",
        "nats",
        "creds_file",
        "stream",
        "subject",
        "apply_deadline",
        "catch_up_timeout",
        "max_age",
        "max_msgs",
    ] {
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "{key} missing from conf/lacquer.toml"
        );
    }
}

#[test]
fn full_config_round_trip() {
    let text = r#"
[node]
name = "edge-1"
role = "shard"
pop = "fra1"

[[listen]]
address = "0.0.0.0:80"

[[listen]]
address = "[::]:80"

[[origin]]
address = "origin.internal:8080"
weight = 3
health = { enabled = false, path = "/healthz", interval = "1m", timeout = "250ms", fall = 1, rise = 1, expect_status = [200, 204] }

[[origin]]
address = "[2001:db8::1]:443"

[upstream]
connect_timeout = "1s500ms"
pool_max_idle_per_origin = 0
retry = false

[cache]
memory = "1GiB"
max_object_size = 10000000
default_grace = "10s"
heuristic_fraction = 0
cookie_requests = "cache"
key = { query = "sort", drop_params = ["utm_source"], ignore_host = true }

[limits]
max_header_bytes = 65536
drain_timeout = 0

[admin]
enabled = false
open = []
purge_allowed = ["10.0.0.0/8", "fd00::/8", "192.0.2.1"]

[log]
level = "info,lacquer=debug"
format = "json"
access_log = false
"#;
    let c = Config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node.pop.as_deref(), Some("fra1"));
    assert_eq!(c.node.role, Role::Shard);
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.origin[0].weight, 3);
    assert_eq!(c.origin[0].health.timeout, Duration::from_millis(250));
    assert_eq!(c.origin[0].health.expect_status, vec![200, 204]);
    assert_eq!(c.origin[1].weight, 1);
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(1500));
    assert_eq!(c.cache.memory, 1 << 30);
    assert_eq!(c.cache.max_object_size, 10_000_000);
    assert_eq!(c.cache.heuristic_fraction, 0.0);
    assert_eq!(c.cache.cookie_requests, CookiePolicy::Cache);
    assert_eq!(c.cache.key.query, QueryMode::Sort);
    assert!(c.cache.key.ignore_host);
    assert_eq!(c.limits.drain_timeout, Duration::ZERO);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.admin.purge_cidrs().len(), 3);
}

#[test]
fn unknown_keys_have_lines() {
    assert_eq!(
        one_error("\n\nlistn = \"x\"\n"),
        "t.toml:3: unknown field `listn`, expected one of `node`, `listen`, `origin`, `origin_group`, `site`, `upstream`, `cache`, `limits`, `admin`, `log`, `client`, `geo`, `cluster`, `compression`, `control`"
    );
    let e = one_error(&format!("{ORIGIN}[cache]\nmemory = 1\nmemroy = 2\n"));
    assert!(
        e.starts_with("t.toml:5: cache: unknown field `memroy`, expected one of"),
        "{e}"
    );
    let e = one_error("[[origin]]\naddress = \"a:1\"\n[origin.health]\nintervl = \"1s\"\n");
    assert!(
        e.starts_with("t.toml:4: origin[0].health: unknown field `intervl`"),
        "{e}"
    );
}

#[test]
fn unknown_keys_in_several_sections_all_reported() {
    let errs = errors("[cache]\nx = 1\n[admin]\ny = 2\n[limits]\nz = 3\n");
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("t.toml:2: cache: unknown field `x`"));
    assert!(errs[1].starts_with("t.toml:4: admin: unknown field `y`"));
    assert!(errs[2].starts_with("t.toml:6: limits: unknown field `z`"));
}

#[test]
fn bad_duration_and_size_strings() {
    assert_eq!(
        one_error(&format!("{ORIGIN}[upstream]\nconnect_timeout = \"10 parsecs\"\n")),
        "t.toml:4: upstream.connect_timeout: invalid duration \"10 parsecs\": expected e.g. 10s, 250ms, 5m, 1h30m, 1d"
    );
    assert_eq!(
        one_error(&format!("{ORIGIN}[upstream]\nconnect_timeout = 10\n")),
        "t.toml:4: upstream.connect_timeout: invalid duration 10: a unit is required, e.g. \"10s\" or \"10ms\""
    );
    let e = one_error(&format!("{ORIGIN}[cache]\nmemory = \"lots\"\n"));
    assert!(
        e.starts_with("t.toml:4: cache.memory: invalid size \"lots\""),
        "{e}"
    );
    let e = one_error(&format!("{ORIGIN}[cache]\nmemory = -1\n"));
    assert_eq!(
        e,
        "t.toml:4: cache.memory: invalid size -1: must not be negative"
    );
    let e = one_error(&format!("{ORIGIN}[limits]\nmax_body = 1.5\n"));
    assert!(
        e.starts_with("t.toml:4: limits.max_body: invalid type"),
        "{e}"
    );
}

#[test]
fn type_errors_have_lines() {
    let e = one_error(&format!("{ORIGIN}[node]\nrole = \"boss\"\n"));
    assert_eq!(e, "t.toml:4: node.role: unknown variant `boss`, expected one of `standalone`, `edge`, `shard`");
    let e = one_error("[[listen]]\naddress = \"localhost:80\"\n[[origin]]\naddress = \"a:1\"\n");
    assert_eq!(
        e,
        "t.toml:2: listen[0].address: invalid address \"localhost:80\": expected IP:port, e.g. 127.0.0.1:8080 or [::1]:8080"
    );
    let e = one_error("[[origin]]\naddress = \"a:1\"\nweight = -1\n");
    assert!(e.starts_with("t.toml:3: origin[0].weight: "), "{e}");
}

#[test]
fn syntax_errors_have_lines() {
    let errs = errors("[cache\nmemory = 1\n");
    assert!(errs[0].starts_with("t.toml:1: "), "{errs:#?}");
    let errs = errors("a = 1\nb = = 2\n");
    assert!(
        errs.iter().all(|e| e.starts_with("t.toml:2: ")),
        "{errs:#?}"
    );
    let errs = errors("[cache]\nmemory = 1\n[cache]\nmemory = 2\n");
    assert!(
        errs.iter().any(|e| e.starts_with("t.toml:3: ")),
        "{errs:#?}"
    );
}

#[test]
fn validation_errors_point_at_the_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[cache]\nmemory = \"256MiB\"\nmax_object_size = \"512MiB\"\n",
            "t.toml:5: cache.max_object_size (512MiB) is larger than cache.memory (256MiB)",
        ),
        ("[cache]\nheuristic_fraction = 1.5\n", "t.toml:4: cache.heuristic_fraction (1.5) must be between 0 and 1"),
        ("[cache]\nheuristic_fraction = nan\n", "t.toml:4: cache.heuristic_fraction (NaN) must be between 0 and 1"),
        ("[cache]\nmax_object_size = 0\n", "t.toml:4: cache.max_object_size must be greater than 0"),
        ("[cache]\ncoalesce_timeout = \"0s\"\n", "t.toml:4: cache.coalesce_timeout must be greater than 0"),
        ("[cache]\nerror_ttl = \"10s\"\n", "t.toml:4: cache.error_ttl (10s) is longer than cache.max_error_ttl (5s), which caps every stored 5xx"),
        ("[upstream]\nfirst_byte_timeout = \"0ms\"\n", "t.toml:4: upstream.first_byte_timeout must be greater than 0"),
        ("[limits]\nidle_timeout = 0\n", "t.toml:4: limits.idle_timeout must be greater than 0"),
        ("[limits]\nmax_header_bytes = 100\n", "t.toml:4: limits.max_header_bytes (100B) must be at least 1KiB"),
        ("[limits]\nh2_max_streams = 0\n", "t.toml:4: limits.h2_max_streams must be greater than 0"),
        ("[limits]\nmax_uri_bytes = \"1MiB\"\n", "t.toml:4: limits.max_uri_bytes (1MiB) must be between 256B and 64KiB"),
        ("[limits]\nh2_stream_buffer = \"1KiB\"\n", "t.toml:4: limits.h2_stream_buffer (1KiB) must be between 16KiB and 16MiB"),
        ("[limits]\nh2_max_control_frames_per_sec = 0\n", "t.toml:4: limits.h2_max_control_frames_per_sec must be greater than 0"),
        (
            "[admin]\npurge_allowed = [\"127.0.0.1/32\", \"10.0.0.0/33\"]\n",
            "t.toml:4: admin.purge_allowed: invalid CIDR \"10.0.0.0/33\": IPv4 prefix length must be at most 32",
        ),
        (
            "[admin]\nopen = [\"health\", \"purge\"]\n",
            "t.toml:4: admin.open: \"purge\" is not one of \"health\", \"ready\", \"metrics\" (other endpoints always need the token)",
        ),
        ("[admin]\nmax_body = 0\n", "t.toml:4: admin.max_body must be greater than 0"),
        (
            "[log]\nlevel = \"infos\"\n",
            "t.toml:4: log.level \"infos\" must be one of trace, debug, info, warn, error, off (or a filter like \"info,lacquer=debug\")",
        ),
        (
            "[node]\nname = \"my node\"\n",
            "t.toml:4: node.name \"my node\" must be non-empty and contain only letters, digits and -._~!#$%&'*+^`|",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(one_error(&format!("{ORIGIN}{body}")), *expected, "{body}");
    }
}

#[test]
fn origin_errors_point_at_the_right_origin() {
    let text = "\
[[origin]]
address = \"a:1\"

[[origin]]
address = \"b:1\"
weight = 0
health.path = \"healthz\"
health.fall = 0

[[origin]]
address = \"http://c:80\"
[origin.health]
interval = \"0s\"
expect_status = [200, 999]

[[origin]]
address = \"A:1\"
";
    let errs = errors(text);
    assert_eq!(
        errs,
        vec![
            "t.toml:6: origin[1].weight must be greater than 0",
            "t.toml:7: origin[1].health.path \"healthz\" must start with '/' and contain no spaces or control characters",
            "t.toml:8: origin[1].health.fall must be greater than 0",
            "t.toml:11: origin[2].address: \"http://c:80\" must be host:port without a scheme, e.g. \"127.0.0.1:9000\"",
            "t.toml:13: origin[2].health.interval must be greater than 0",
            "t.toml:14: origin[2].health.expect_status: 999 is not an HTTP status code (100-599)",
            "t.toml:17: origin[3].address \"A:1\" is listed more than once",
        ]
    );
}

#[test]
fn missing_key_falls_back_to_table_line() {
    // No `address` key: the error points at the [[origin]] header.
    let e = one_error("[node]\nname = \"x\"\n\n[[origin]]\nweight = 2\n");
    assert_eq!(
        e,
        "t.toml:4: origin[0].address: address is required (\"host:port\")"
    );
}

#[test]
fn listen_conflicts() {
    let text = format!(
        "{ORIGIN}[[listen]]\naddress = \"127.0.0.1:80\"\n[[listen]]\naddress = \"127.0.0.1:80\"\n\
         [[listen]]\naddress = \"127.0.0.1:6082\"\n[[listen]]\naddress = \"127.0.0.1:0\"\n[[listen]]\naddress = \"127.0.0.1:0\"\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:6: listen[1].address 127.0.0.1:80 is listed more than once",
            "t.toml:8: listen[2].address 127.0.0.1:6082 is also admin.address",
        ]
    );
    assert_eq!(
        one_error(&format!("listen = []\n{ORIGIN}")),
        "t.toml:1: at least one [[listen]] address is required"
    );
}

#[test]
fn missing_files_are_reported() {
    let text = format!(
        "{ORIGIN}[[listen]]\naddress = \"127.0.0.1:8443\"\n[listen.tls]\ncert = \"/nonexistent/lacquer-cert.pem\"\n\n\
         [admin]\ntoken_file = \"/nonexistent/lacquer.token\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        errs[0],
        "t.toml:5: listen[0].tls.key is required when [listen[0].tls] is present"
    );
    assert_eq!(
        errs[1],
        "t.toml:6: listen[0].tls.cert: file /nonexistent/lacquer-cert.pem does not exist"
    );
    assert!(
        errs[2].starts_with("t.toml:9: admin.token_file: cannot read /nonexistent/lacquer.token: "),
        "{errs:#?}"
    );
}

#[test]
fn multiple_errors_reported_together_in_line_order() {
    let text = "\
[cache]
max_object_size = \"1GiB\"
heuristic_fraction = -0.5

[[origin]]
address = \"nope\"
weight = 0

[admin]
purge_allowed = [\"banana\"]
";
    let errs = errors(text);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    let lines: Vec<&str> = errs.iter().map(|e| e.split(':').nth(1).unwrap()).collect();
    assert_eq!(lines, ["2", "3", "6", "7", "10"]);
    let all = Config::parse(text, "t.toml").unwrap_err().to_string();
    assert_eq!(all.lines().count(), 5);
    assert!(all.starts_with(
        "t.toml:2: cache.max_object_size (1GiB) is larger than cache.memory (256MiB)\n"
    ));
}

#[test]
fn quick_mode() {
    let listen = "0.0.0.0:8080".parse().unwrap();
    let c = Config::quick(listen, &["127.0.0.1:9000".into(), "[::1]:9001".into()]).unwrap();
    assert_eq!(c.listen.len(), 1);
    assert_eq!(c.listen[0].address, listen);
    assert_eq!(c.origin.len(), 2);
    assert_eq!(c.origin[1].address, "[::1]:9001");
    assert_eq!(c.origin[0].weight, 1);
    assert_eq!(c.cache, CacheConfig::default());

    let err = Config::quick(listen, &["bad".into(), "x:0".into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command line: origin[0].address: \"bad\" is missing a port, expected host:port\n\
         command line: origin[1].address: \"x:0\": port must be a number from 1 to 65535"
    );
    let err = Config::quick(listen, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command line: at least one [[origin]] is required for role standalone"
    );
    // Listening on the admin address is a conflict even in quick mode.
    assert!(Config::quick("127.0.0.1:6082".parse().unwrap(), &["a:1".into()]).is_err());
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("lacquer-config-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn load_resolves_relative_paths_and_reads_token() {
    let dir = temp_dir("load");
    std::fs::write(dir.join("cert.pem"), "cert").unwrap();
    std::fs::write(dir.join("key.pem"), "key").unwrap();
    std::fs::write(dir.join("admin.token"), "  s3cret\n").unwrap();
    let path = dir.join("lacquer.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        "{ORIGIN}[[listen]]\naddress = \"127.0.0.1:8443\"\ntls = {{ cert = \"cert.pem\", key = \"key.pem\" }}\n\
         [admin]\ntoken_file = \"admin.token\"\n"
    )
    .unwrap();
    drop(f);

    let c = check_config(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    let tls = c.listen[0].tls.as_ref().unwrap();
    assert_eq!(tls.cert, dir.join("cert.pem"));
    assert_eq!(tls.key, dir.join("key.pem"));
    assert_eq!(c.admin.read_token().unwrap().as_deref(), Some("s3cret"));

    std::fs::write(dir.join("admin.token"), "\n").unwrap();
    let err = check_config(&path).unwrap_err().to_string();
    assert!(err.ends_with("admin.token is empty"), "{err}");
    assert!(err.contains("lacquer.toml:7: admin.token_file: "), "{err}");

    std::fs::write(dir.join("admin.token"), vec![b'a'; 5000]).unwrap();
    let err = check_config(&path).unwrap_err().to_string();
    assert!(err.contains("is larger than 4096 bytes"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_missing_file() {
    let err = Config::load(Path::new("/nonexistent/lacquer.toml")).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].line, None);
    assert!(err
        .to_string()
        .starts_with("/nonexistent/lacquer.toml: cannot read: "));
}

#[test]
fn no_token_file_means_no_token() {
    assert_eq!(AdminConfig::default().read_token(), Ok(None));
}

#[test]
fn hostile_input_does_not_panic() {
    let deep = format!("a = {}{}", "[".repeat(5000), "]".repeat(5000));
    let inputs = [
        "\u{0}",
        "[[[",
        "\"\"\"",
        "origin = 5",
        "listen = \"x\"",
        "cache = []",
        "[[cache]]",
        "origin = [[]]",
        "origin = [{ address = \"a:1\", health = 3 }]",
        "cache.memory = \"18446744073709551616\"",
        "cache.memory = 18446744073709551615",
        "limits.max_header_bytes = \"20000000TiB\"",
        "cache.heuristic_max = \"9999999999999999999d\"",
        "\u{feff}x = 1",
        "é = \"ü\"\nlistn = 1",
        deep.as_str(),
    ];
    for input in inputs {
        let _ = Config::parse(input, "t.toml");
    }
}

#[test]
fn geo_and_client_sections() {
    let c = Config::parse(
        &format!(
            "{ORIGIN}[client]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[geo]\naction = \"header\"\nhealth_timeout = \"500ms\"\n"
        ),
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.client.trusted_cidrs().len(), 2);
    assert_eq!(c.geo.action, crate::config::GeoMode::Header);
    assert_eq!(c.geo.health_timeout, Duration::from_millis(500));
    assert!(!c.geo.enabled);
    assert_eq!(c.geo.pops, Path::new("geo/pops.toml"));

    // Disabled geo is not checked further; enabled geo needs its files and names.
    let e = Config::parse(&format!("{ORIGIN}[geo]\nenabled = true\n"), "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml:3: geo.mmdb (a GeoIP2/GeoLite2 City .mmdb file) is required"),
        "{e}"
    );
    assert!(e.contains("geo.default_pop is required"), "{e}");
    assert!(e.contains("node.pop (this node's PoP"), "{e}");

    let e = one_error(&format!("{ORIGIN}[geo]\naction = \"bounce\"\n"));
    assert!(
        e.starts_with("t.toml:4: geo.action: unknown variant `bounce`"),
        "{e}"
    );
    let e = one_error(&format!("{ORIGIN}[client]\ntrusted_proxies = [\"nope\"]\n"));
    assert!(
        e.starts_with("t.toml:4: client.trusted_proxies: invalid CIDR"),
        "{e}"
    );
}

const PEERS: &str = r#"peers = [
  { name = "edge-1", address = "10.0.0.1:80", admin = "10.0.0.1:6082", role = "edge" },
  { name = "shard-a", address = "10.0.0.11:80", admin = "10.0.0.11:6082", weight = 2 },
  { name = "shard-b", address = "10.0.0.12:80", admin = "10.0.0.12:6082", role = "shard" },
]
"#;

#[test]
fn cluster_section_parses() {
    let text = format!(
        "[node]\nname = \"shard-a\"\nrole = \"shard\"\n{ORIGIN}[cluster]\nenabled = true\nramp_up = \"10s\"\nhealth_port = \"public\"\n{PEERS}"
    );
    let c = Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.cluster.enabled);
    assert_eq!(c.cluster.peers.len(), 3);
    assert_eq!(c.cluster.peers[0].role, PeerRole::Edge);
    assert_eq!(
        c.cluster.peers[1].role,
        PeerRole::Shard,
        "shard is the default"
    );
    assert_eq!(c.cluster.peers[1].weight, 2);
    assert_eq!(c.cluster.peers[2].weight, 1);
    assert_eq!(c.cluster.ramp_up, Duration::from_secs(10));
    assert_eq!(c.cluster.health_port, HealthPort::Public);
    assert_eq!(c.cluster.fall, 2);
    // An edge may be listed or not; it needs no origin.
    let edge =
        format!("[node]\nname = \"edge-9\"\nrole = \"edge\"\n[cluster]\nenabled = true\n{PEERS}");
    Config::parse(&edge, "t.toml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn cluster_errors_have_lines() {
    let e = errors(&format!(
        "{ORIGIN}[cluster]\npeers = [\n  {{ name = \"a b\", address = \"h:1\", admin = \"h:2\" }},\n  {{ name = \"x\", address = \"nope\", admin = \"h:2\", weight = 0 }},\n]\nfall = 0\nhealth_path = \"health\"\n"
    ));
    let all = e.join("\n");
    assert!(
        all.contains("t.toml:5: cluster.peers[0].name \"a b\" must be"),
        "{all}"
    );
    assert!(
        all.contains("t.toml:6: cluster.peers[1].address: \"nope\" is missing a port"),
        "{all}"
    );
    assert!(
        all.contains("t.toml:6: cluster.peers[1].admin \"h:2\" is used more than once"),
        "{all}"
    );
    assert!(
        all.contains("t.toml:6: cluster.peers[1].weight must be from 1 to 100"),
        "{all}"
    );
    assert!(
        all.contains("t.toml:8: cluster.fall must be greater than 0"),
        "{all}"
    );
    assert!(
        all.contains("t.toml:9: cluster.health_path \"health\" must start with '/'"),
        "{all}"
    );
    let e = one_error(&format!(
        "{ORIGIN}[cluster]\npeers = [{{ name = \"a\", bogus = 1 }}]\n"
    ));
    assert!(e.starts_with("t.toml:4: "), "{e}");
    assert!(e.contains("unknown field `bogus`"), "{e}");
    let e = one_error(&format!("{ORIGIN}[cluster]\nhealth_port = \"side\"\n"));
    assert!(
        e.starts_with("t.toml:4: cluster.health_port: unknown variant `side`"),
        "{e}"
    );
}

#[test]
fn enabled_cluster_needs_a_consistent_membership() {
    let shard_b_only = "peers = [{ name = \"shard-b\", address = \"h:1\", admin = \"h:2\" }]\n";
    // A shard that is not on the ring would never be sent anything.
    let e = one_error(&format!(
        "[node]\nname = \"shard-a\"\nrole = \"shard\"\n{ORIGIN}[cluster]\nenabled = true\n{shard_b_only}"
    ));
    assert!(
        e.starts_with("t.toml:2: node.name \"shard-a\" must be listed"),
        "{e}"
    );
    // An edge listed as a shard contradicts itself.
    let e = one_error(&format!(
        "[node]\nname = \"shard-b\"\nrole = \"edge\"\n[cluster]\nenabled = true\n{shard_b_only}"
    ));
    assert!(
        e.contains("is an edge but cluster.peers lists it as a shard"),
        "{e}"
    );
    // No shard at all.
    let e = one_error(
        "[node]\nrole = \"edge\"\n[cluster]\nenabled = true\npeers = [{ name = \"e\", address = \"h:1\", admin = \"h:2\", role = \"edge\" }]\n",
    );
    assert!(e.contains("at least one peer with role \"shard\""), "{e}");
    // A standalone node has no place in a tier.
    let e = one_error(&format!(
        "{ORIGIN}[cluster]\nenabled = true\n{shard_b_only}"
    ));
    assert!(e.contains("node.role must be \"edge\" or \"shard\""), "{e}");
    // Disabled: the membership rules wait until it is switched on.
    Config::parse(&format!("{ORIGIN}[cluster]\n{shard_b_only}"), "t.toml").unwrap();
}

#[test]
fn cluster_examples_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/cluster-example");
    for (file, role) in [
        ("edge.toml", Role::Edge),
        ("shard-a.toml", Role::Shard),
        ("shard-b.toml", Role::Shard),
    ] {
        let c = Config::load(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node.role, role);
        assert!(c.cluster.enabled);
        assert_eq!(c.cluster.peers.len(), 3);
    }
}

#[test]
fn passive_health_keys() {
    let c = Config::parse(
        "[[origin]]\naddress = \"a:1\"\n[origin.health]\npassive_fall = 0\npassive_cooldown = \"2s\"\npassive_5xx = false\n",
        "t.toml",
    )
    .unwrap();
    let h = &c.origin[0].health;
    assert_eq!((h.passive_fall, h.passive_5xx), (0, false));
    assert_eq!(h.passive_cooldown, Duration::from_secs(2));
    let e =
        one_error("[[origin]]\naddress = \"a:1\"\n[origin.health]\npassive_cooldown = \"0s\"\n");
    assert_eq!(
        e,
        "t.toml:4: origin[0].health.passive_cooldown must be greater than 0"
    );
}

#[test]
fn compression_section_is_checked() {
    let c = Config::parse(
        "[[origin]]\naddress = \"127.0.0.1:9000\"\n[compression]\nmin_size = \"4KiB\"\nstore = [\"gzip\"]\ntypes = [\"text/*\", \"+json\"]\nbrotli_level = 11\n",
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.compression.min_size, 4096);
    assert_eq!(c.compression.store, ["gzip"]);
    assert!(c.compression.enabled && c.compression.on_the_fly);
    let e = Config::parse(
        "[[origin]]\naddress = \"127.0.0.1:9000\"\n[compression]\nstore = [\"zstd\", \"gzip\", \"gzip\"]\ntypes = [\"text\"]\nbrotli_level = 12\ngzip_level = 0\non_the_fly_gzip_level = 10\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    for want in [
        "t.toml:4: compression.store: unknown encoding \"zstd\"",
        "t.toml:4: compression.store lists \"gzip\" twice",
        "t.toml:5: compression.types: \"text\" must be",
        "t.toml:6: compression.brotli_level must be from 0 to 11",
        "t.toml:7: compression.gzip_level must be from 1 to 9",
        "t.toml:8: compression.on_the_fly_gzip_level must be from 1 to 9",
    ] {
        assert!(e.contains(want), "{want:?} not in:\n{e}");
    }
    let e = Config::parse(
        "[[origin]]\naddress = \"127.0.0.1:9000\"\n[compression]\nlevel = 3\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.toml:4: compression: unknown field `level`"),
        "{e}"
    );
}

#[test]
fn control_section_is_checked() {
    let c = Config::parse(
        "[[origin]]\naddress = \"127.0.0.1:9000\"\n[control]\nnats = [\"nats://127.0.0.1:4222\"]\napply_deadline = \"500ms\"\n",
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.control.enabled());
    assert_eq!(c.control.apply_deadline, Duration::from_millis(500));
    assert!(!Config::default().control.enabled());
    let err = Config::parse(
        "[[origin]]\naddress = \"127.0.0.1:9000\"\n[control]\nnats = [\"http://x:1\", \"nats://u:p@h:1\"]\nstream = \"a.b\"\nsubject = \"a.>\"\napply_deadline = \"0s\"\nmax_msgs = 0\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    for want in [
        "control.nats: \"http://x:1\": must start with nats:// or tls://",
        "control.nats: \"nats://u:p@h:1\": expected nats://host:port",
        "control.stream \"a.b\" must be",
        "control.subject \"a.>\" must be",
        "control.apply_deadline",
        "control.max_msgs must be from 1",
    ] {
        assert!(err.contains(want), "{want} not in {err}");
    }
}
