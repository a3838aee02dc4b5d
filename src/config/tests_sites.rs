//! `[[origin_group]]` and `[[site]]`: parsing, and every validation error with its line.

use std::time::Duration;

use super::tests::{errors, one_error};
use super::*;

const ORIGIN: &str = "[[origin]]\naddress = \"127.0.0.1:9000\"\n";

/// The example of the issue that asked for sites, as written there.
const ISSUE_EXAMPLE: &str = r#"[[origin_group]]
name = "api"
servers = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002", weight = 2 }]
[[origin_group]]
name = "static"
servers = [{ address = "127.0.0.1:9003" }]
[[site]]
name = "api"
hosts = ["api.example.com"]
origin_group = "api"
cache = { default_ttl = "2s", stale_if_error = "10m" }
[[site]]
name = "static"
hosts = ["static.example.com", "*.cdn.example.com"]
origin_group = "static"
cache = { force_ttl = "1d" }
[[site]]
name = "admin"
hosts = ["www.example.com"]
paths = ["/admin/"]
origin_group = "api"
allow = ["10.1.0.0/16"]
cache = { pass = true }
"#;

fn ok(text: &str) -> Config {
    Config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}\nfor:\n{text}"))
}

/// Every needle must be among the errors, each as a whole `t.toml:N: ...` prefix.
fn assert_errors(text: &str, needles: &[&str]) {
    let errs = errors(text);
    for needle in needles {
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "missing {needle:?} in:\n{}",
            errs.join("\n")
        );
    }
    assert_eq!(errs.len(), needles.len(), "{}", errs.join("\n"));
}

/// A site on the default group, with `body` as its other lines.
fn site(name: &str, body: &str) -> String {
    format!("[[site]]\nname = \"{name}\"\n{body}")
}

#[test]
fn issue_example_parses() {
    let c = ok(ISSUE_EXAMPLE);
    assert!(c.origin.is_empty(), "sites need no top-level [[origin]]");
    assert_eq!(c.origin_group.len(), 2);
    assert_eq!(c.origin_group[0].servers[1].weight, 2);
    assert_eq!(c.origin_group[0].servers[0].weight, 1);
    assert_eq!(c.origin_group[0].balance, Balance::RoundRobin);
    assert_eq!(c.site.len(), 3);
    assert_eq!(c.site[0].cache.default_ttl, Some(Duration::from_secs(2)));
    assert_eq!(
        c.site[0].cache.stale_if_error,
        Some(Duration::from_secs(600))
    );
    assert_eq!(c.site[1].cache.force_ttl, Some(Duration::from_secs(86_400)));
    assert_eq!(c.site[1].hosts[1], "*.cdn.example.com");
    assert!(c.site[2].cache.pass);
    assert_eq!(c.site[2].allow, ["10.1.0.0/16"]);
    assert_eq!(c.site[2].origin_group.as_deref(), Some("api"));
}

#[test]
fn sites_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sites-example.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.site.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["https", "api", "static", "live", "admin", "www"]);
    let by_name = |n: &str| c.site.iter().find(|s| s.name == n).unwrap();
    assert_eq!(by_name("https").schemes, ["http"]);
    assert_eq!(by_name("https").redirect.as_ref().unwrap().status, 301);
    assert_eq!(
        by_name("static").cache.force_ttl,
        Some(Duration::from_secs(365 * 86_400))
    );
    let www = &by_name("www").cache;
    assert_eq!(www.keep_cookies, ["session"]);
    assert_eq!(www.cookies, Some(CookieMode::Pass));
    assert!(by_name("live").cache.pass);
    assert_eq!(by_name("static").compress, Some(false));
    assert_eq!(by_name("live").compress, None);
    assert_eq!(by_name("admin").allow, ["10.1.0.0/16"]);
    let groups: Vec<&str> = c.origin_group.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, ["api", "static", "www"]);
}

#[test]
fn default_group_and_site() {
    // Without [[origin]] a site must name its group unless it answers by itself.
    let e = one_error(&site("a", "hosts = [\"a.example\"]\n"));
    assert_eq!(
        e,
        "t.toml:1: site[0].origin_group: required, as there is no top-level [[origin]] list (the default group) to send misses to"
    );
    ok(&site(
        "r",
        "redirect = { location = \"https://{host}{uri}\" }\n",
    ));
    ok(&site("r", "respond = { status = 503 }\n"));
    // With it, "default" names that list, and may not name anything else.
    ok(&format!(
        "{ORIGIN}{}",
        site("a", "hosts = [\"a.example\"]\n")
    ));
    ok(&format!(
        "{ORIGIN}{}",
        site("a", "origin_group = \"default\"\n")
    ));
    assert_errors(
        &format!(
            "{ORIGIN}[[origin_group]]\nname = \"default\"\nservers = [{{ address = \"h:1\" }}]\n{}",
            site("default", "")
        ),
        &[
            "t.toml:4: origin_group[0].name: \"default\" is the group of the top-level [[origin]] list",
            "t.toml:7: site[0].name: \"default\" is the site of the top-level [cache] and [[origin]]",
        ],
    );
    // Without [[origin]] "default" is an ordinary name, and a group so named is the default.
    ok(&format!(
        "[[origin_group]]\nname = \"default\"\nservers = [{{ address = \"h:1\" }}]\n{}",
        site("default", "")
    ));
    assert_eq!(
        one_error(&site("a", "origin_group = \"default\"\n")),
        "t.toml:3: site[0].origin_group: no [[origin_group]] is named \"default\" (\"default\" is the top-level [[origin]] list, and there is none)"
    );
    assert_eq!(
        one_error(&format!(
            "{ORIGIN}{}",
            site("a", "origin_group = \"nope\"\n")
        )),
        "t.toml:5: site[0].origin_group: no [[origin_group]] is named \"nope\""
    );
    // An edge sends misses to its tier.
    ok(&format!("[node]\nrole = \"edge\"\n{}", site("a", "")));
}

#[test]
fn group_errors() {
    let text = r#"[[origin_group]]
name = ""
servers = []
[[origin_group]]
name = "a b"
servers = [{ address = "h:1" }]
[[origin_group]]
name = "g"
servers = [{ address = "nope" }, { address = "h:1", weight = 0 }, { address = "h:1", weight = 101 }]
sni = "bad sni!"
ca_file = "/nonexistent/ca.pem"
health = { path = "x", fall = 0 }
[[origin_group]]
name = "g"
servers = [{ address = "h:1" }]
[[origin_group]]
name = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
servers = [{ address = "h:1" }]
"#;
    let text = format!("{ORIGIN}{text}");
    assert_errors(
        &text,
        &[
            "t.toml:4: origin_group[0].name: a name is required",
            "t.toml:5: origin_group[0].servers: at least one server is required",
            "t.toml:7: origin_group[1].name: \"a b\" may contain only letters, digits, '-' and '_'",
            "t.toml:11: origin_group[2].servers[0].address: \"nope\" is missing a port",
            "t.toml:11: origin_group[2].servers[1].weight: must be from 1 to 100",
            "t.toml:11: origin_group[2].servers[2].address: \"h:1\" is listed more than once",
            "t.toml:11: origin_group[2].servers[2].weight: must be from 1 to 100",
            "t.toml:12: origin_group[2].sni: \"bad sni!\" is not a valid server name",
            "t.toml:13: origin_group[2].ca_file: file /nonexistent/ca.pem does not exist",
            "t.toml:14: origin_group[2].health.path \"x\" must start with '/'",
            "t.toml:14: origin_group[2].health.fall must be greater than 0",
            "t.toml:16: origin_group[3].name: another group is named \"g\"",
            "t.toml:19: origin_group[4].name: \"xxxx",
        ],
    );
}

#[test]
fn site_name_errors() {
    assert_errors(
        &format!(
            "{ORIGIN}[[site]]\nhosts = [\"a\"]\n{}{}{}",
            site("x.y", "hosts = [\"b\"]\n"),
            site("dup", "hosts = [\"c\"]\n"),
            site("dup", "hosts = [\"d\"]\n")
        ),
        &[
            "t.toml:3: site[0].name: a name is required",
            "t.toml:6: site[1].name: \"x.y\" may contain only",
            "t.toml:12: site[3].name: another site is named \"dup\"",
        ],
    );
}

#[test]
fn answer_errors() {
    let text = format!(
        "{ORIGIN}{}{}{}{}",
        site(
            "both",
            "hosts = [\"a\"]\nredirect = { location = \"/x\" }\nrespond = { status = 200 }\n"
        ),
        site(
            "r",
            "hosts = [\"b\"]\nredirect = { status = 200, location = \"\" }\n"
        ),
        site(
            "s",
            "hosts = [\"c\"]\nrespond = { status = 199, content_type = \"a\\nb\" }\n"
        ),
        site(
            "n",
            "hosts = [\"d\"]\nrespond = { status = 204, body = \"x\" }\n"
        ),
    );
    assert_errors(
        &text,
        &[
            "t.toml:7: site[0]: redirect and respond are exclusive",
            "t.toml:11: site[1].redirect.status: 200 is not a redirect status (301, 302, 303, 307 or 308)",
            "t.toml:11: site[1].redirect.location: a location is required",
            "t.toml:15: site[2].respond.status: 199 must be from 200 to 599",
            "t.toml:15: site[2].respond.content_type: \"a\\nb\" is not a valid header value",
            "t.toml:19: site[3].respond.body: a 204 response has no body",
        ],
    );
    for status in [301, 302, 303, 307, 308] {
        ok(&site(
            "r",
            &format!("redirect = {{ status = {status}, location = \"/\" }}\n"),
        ));
    }
    ok(&site("r", "respond = { status = 599 }\n"));
    for status in [204, 205, 304] {
        let e = one_error(&site(
            "r",
            &format!("respond = {{ status = {status}, body = \"x\" }}\n"),
        ));
        assert!(
            e.contains(&format!("a {status} response has no body")),
            "{e}"
        );
    }
}

#[test]
fn match_errors() {
    let text = format!(
        "{ORIGIN}{}",
        site(
            "m",
            r#"hosts = ["ok.example", "Bad Host", "a.example:80", "www.*.example", "*"]
paths = ["/ok", "nope", "/a b", "/q?x=1"]
exact_paths = ["/", "x"]
path_regex = ["^/ok/[0-9]+$", "(unclosed"]
methods = ["GET", "get", "BAD METHOD"]
schemes = ["https", "ftp", "HTTP"]
"#
        )
    );
    assert_errors(
        &text,
        &[
            "t.toml:5: site[0].hosts: \"Bad Host\": not a valid host name",
            "t.toml:5: site[0].hosts: \"a.example:80\" must not carry a port",
            "t.toml:5: site[0].hosts: \"www.*.example\": a wildcard must be the whole first label",
            "t.toml:5: site[0].hosts: \"*\" is not a host pattern; leave hosts empty to match any host",
            "t.toml:6: site[0].paths: \"nope\" must start with '/'",
            "t.toml:6: site[0].paths: \"/a b\" may hold only visible ASCII",
            "t.toml:6: site[0].paths: \"/q?x=1\" may hold only visible ASCII",
            "t.toml:7: site[0].exact_paths: \"x\" must start with '/'",
            "t.toml:8: site[0].path_regex: \"(unclosed\": unclosed group",
            "t.toml:9: site[0].methods: \"get\" must be upper-case",
            "t.toml:9: site[0].methods: \"BAD METHOD\" is not a method name",
            "t.toml:10: site[0].schemes: \"ftp\" is not \"http\" or \"https\"",
            "t.toml:10: site[0].schemes: \"HTTP\" is not \"http\" or \"https\"",
        ],
    );
    // Case does not matter in host names; wildcards, literals and odd methods are fine.
    ok(&format!(
        "{ORIGIN}{}",
        site(
            "m",
            "hosts = [\"WWW.Example.COM\", \"*.cdn.example.com\", \"192.0.2.7\", \"[::1]\"]\nmethods = [\"PURGE\"]\n"
        )
    ));
}

#[test]
fn access_errors() {
    let text = format!(
        "{ORIGIN}{}",
        site(
            "a",
            "allow = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\ndeny = [\"nope\"]\nrate_limit = { rate = nan, burst = 0, max_clients = 10000001 }\n"
        )
    );
    assert_errors(
        &text,
        &[
            "t.toml:5: site[0].allow: invalid CIDR \"10.0.0.0/33\"",
            "t.toml:6: site[0].deny: invalid CIDR \"nope\"",
            "t.toml:7: site[0].rate_limit.rate: must be a number of requests per second greater than 0",
            "t.toml:7: site[0].rate_limit.max_clients: must be from 1 to 10000000",
        ],
    );
    for rate in ["0.0", "-1.0", "inf", "2e9"] {
        let e = one_error(&format!(
            "{ORIGIN}{}",
            site("a", &format!("rate_limit = {{ rate = {rate} }}\n"))
        ));
        assert!(e.contains("rate_limit.rate: must be"), "{e}");
    }
    let c = ok(&format!("{ORIGIN}{}", site("a", "rate_limit = {}\n")));
    assert_eq!(c.site[0].rate_limit.as_ref().unwrap().burst, 20);
}

#[test]
fn header_edit_errors() {
    let text = format!(
        "{ORIGIN}{}",
        site(
            "h",
            r#"[site.request_headers]
set = { "X-Ok" = "{host}", "bad name" = "x", "x-ok" = "again" }
add = { Connection = "close", "X-Ok" = "added" }
remove = ["Transfer-Encoding", "x-fine", "Host"]
[site.response_headers]
set = { "Content-Length" = "0", Host = "fine" }
"#
        )
    );
    assert_errors(
        &text,
        &[
            "t.toml:6: site[0].request_headers.set: \"bad name\" is not a valid header field name",
            "t.toml:7: site[0].request_headers.add: \"Connection\" cannot be edited",
            "t.toml:6: site[0].request_headers.set: \"x-ok\" is listed twice (header names are case-insensitive)",
            "t.toml:8: site[0].request_headers.remove: \"Transfer-Encoding\" cannot be edited",
            "t.toml:8: site[0].request_headers.remove: \"Host\" cannot be edited on requests",
            "t.toml:10: site[0].response_headers.set: \"Content-Length\" cannot be edited",
        ],
    );
}

#[test]
fn template_errors() {
    let text = format!(
        "{ORIGIN}{}",
        site(
            "t",
            r#"redirect = { location = "https://{hots}{uri}" }
request_headers = { set = { "X-Result" = "{cache}" } }
response_headers = { add = { "X-Open" = "{site" } }
"#
        )
    );
    let e = errors(&text);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with("t.toml:5: site[0].redirect.location: ") && e[0].contains("hots"));
    assert!(e[1].starts_with("t.toml:6: site[0].request_headers.set.X-Result: "));
    assert!(e[2].starts_with("t.toml:7: site[0].response_headers.add.X-Open: "));
}

#[test]
fn cache_errors() {
    let text = format!(
        "{ORIGIN}{}{}{}",
        site(
            "p",
            "hosts = [\"a\"]\ncache = { pass = true, default_ttl = \"1s\", grace = \"1s\", key = { headers = [\"x-a\"] } }\n"
        ),
        site(
            "f",
            "hosts = [\"b\"]\n[site.cache]\nforce_ttl = \"0\"\ndefault_ttl = \"1s\"\nstatus_ttl = { \"404\" = \"1m\", \"5xx\" = \"1s\", \"600\" = \"1s\", \"4yy\" = \"1s\" }\nmax_object_size = 0\n"
        ),
        site(
            "c",
            "hosts = [\"c\"]\n[site.cache]\ncookies = \"strip\"\nkeep_cookies = [\"session\"]\nstrip_cookies = [\"a b\"]\nmax_object_size = \"1TiB\"\n[site.cache.key]\nheaders = [\"bad header\"]\ncookies = [\"c;d\"]\ndrop_params = [\"a=b\"]\n"
        ),
    );
    assert_errors(
        &text,
        &[
            "t.toml:6: site[0].cache.default_ttl: has no effect with pass = true",
            "t.toml:6: site[0].cache.grace: has no effect with pass = true",
            "t.toml:6: site[0].cache.key: has no effect with pass = true",
            "t.toml:11: site[1].cache.force_ttl: 0 stores nothing usable; write pass = true",
            "t.toml:12: site[1].cache.default_ttl: has no effect with force_ttl",
            "t.toml:13: site[1].cache.status_ttl: has no effect with force_ttl",
            "t.toml:13: site[1].cache.status_ttl: \"4yy\" is not a status code (100-599) or class (\"1xx\" to \"5xx\")",
            "t.toml:13: site[1].cache.status_ttl: \"600\" is not a status code",
            "t.toml:14: site[1].cache.max_object_size: must be greater than 0",
            "t.toml:19: site[2].cache.cookies: \"strip\" removes every cookie",
            "t.toml:21: site[2].cache: keep_cookies and strip_cookies are exclusive",
            "t.toml:21: site[2].cache.strip_cookies: \"a b\" is not a cookie name",
            "t.toml:22: site[2].cache.max_object_size: 1TiB is larger than cache.memory (256MiB)",
            "t.toml:24: site[2].cache.key.headers: \"bad header\" is not a valid header field name",
            "t.toml:25: site[2].cache.key.cookies: \"c;d\" is not a cookie name",
            "t.toml:26: site[2].cache.key.drop_params: \"a=b\" is not a query parameter name",
        ],
    );
    let many: Vec<String> = (0..33).map(|i| format!("\"x-h{i}\"")).collect();
    let e = one_error(&format!(
        "{ORIGIN}{}",
        site("k", &format!("cache.key.headers = [{}]\n", many.join(", ")))
    ));
    assert_eq!(
        e,
        "t.toml:5: site[0].cache.key.headers: 33 names; at most 32 are allowed"
    );
    // What is meaningful passes: a zero default_ttl (store nothing without freshness),
    // per-status lifetimes, cookies kept and the rest passed.
    let c = ok(&format!(
        "{ORIGIN}{}",
        site(
            "ok",
            "[site.cache]\ndefault_ttl = \"0\"\nstatus_ttl = { \"404\" = \"1m\", \"5xx\" = \"0s\" }\nkeep_cookies = [\"session\"]\ncookies = \"pass\"\nset_cookie = \"strip\"\n"
        )
    ));
    let k = &c.site[0].cache;
    assert_eq!(k.default_ttl, Some(Duration::ZERO));
    assert_eq!(k.status_ttl["404"], Duration::from_secs(60));
    assert_eq!(k.set_cookie, SetCookieMode::Strip);
}

#[test]
fn status_match() {
    assert_eq!(StatusMatch::parse("404"), Some(StatusMatch::Code(404)));
    assert_eq!(StatusMatch::parse("5xx"), Some(StatusMatch::Class(5)));
    assert_eq!(StatusMatch::parse("4XX"), Some(StatusMatch::Class(4)));
    for bad in [
        "99", "600", "6xx", "0xx", "40x", "4x", "1000", "", "abc", "+40",
    ] {
        assert_eq!(StatusMatch::parse(bad), None, "{bad}");
    }
    assert!(StatusMatch::Class(4).matches(418));
    assert!(!StatusMatch::Class(4).matches(500));
    assert!(StatusMatch::Code(404).matches(404));
}

fn unreachable(sites: &[(&str, &str)]) -> Vec<String> {
    let text: String = sites.iter().map(|(n, b)| site(n, b)).collect();
    match Config::parse(&format!("{ORIGIN}{text}"), "t.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors
            .iter()
            .map(|e| {
                assert!(e.message.contains("can never match"), "{e}");
                e.message.clone()
            })
            .collect(),
    }
}

#[test]
fn unreachable_sites_are_errors() {
    let e = one_error(&format!(
        "{ORIGIN}{}{}",
        site("all", ""),
        site("api", "hosts = [\"api.example.com\"]\n")
    ));
    assert_eq!(
        e,
        "t.toml:5: site[1] \"api\" can never match: site[0] \"all\" matches every request it would"
    );
    let shadowed = [
        // A wildcard covers names below it, and narrower wildcards.
        [
            ("w", "hosts = [\"*.example.com\"]\n"),
            ("x", "hosts = [\"a.b.Example.com\"]\n"),
        ],
        [
            ("w", "hosts = [\"*.example.com\"]\n"),
            ("x", "hosts = [\"*.b.example.com\"]\n"),
        ],
        [
            ("w", "hosts = [\"*.com\", \"a.org\"]\n"),
            ("x", "hosts = [\"a.org\", \"b.com\"]\n"),
        ],
        // Path prefixes and exact paths.
        [
            ("p", "paths = [\"/api/\"]\n"),
            ("x", "paths = [\"/api/v1/\"]\nexact_paths = [\"/api/x\"]\n"),
        ],
        [
            ("p", "exact_paths = [\"/a\", \"/b\"]\n"),
            ("x", "exact_paths = [\"/b\"]\n"),
        ],
        // A regex is covered by a site without any path condition.
        [
            ("p", "hosts = [\"a\"]\n"),
            ("x", "hosts = [\"a\"]\npath_regex = [\"^/x\"]\n"),
        ],
        // Methods and schemes: a superset, or none given.
        [
            ("m", "methods = [\"GET\", \"HEAD\"]\n"),
            ("x", "methods = [\"GET\"]\nhosts = [\"a\"]\n"),
        ],
        [
            ("s", "schemes = [\"http\", \"https\"]\n"),
            ("x", "hosts = [\"a\"]\n"),
        ],
        // The same conditions twice.
        [
            ("d", "hosts = [\"a\"]\npaths = [\"/x\"]\n"),
            ("x", "hosts = [\"A\"]\npaths = [\"/x\"]\n"),
        ],
    ];
    for pair in shadowed {
        let e = unreachable(&pair);
        assert_eq!(
            e,
            [format!(
                "site[1] \"x\" can never match: site[0] \"{}\" matches every request it would",
                pair[0].0
            )],
            "{pair:?}"
        );
    }
    let reachable = [
        // Any host is not covered by one host; a bare domain is not under its wildcard.
        [("a", "hosts = [\"a\"]\n"), ("x", "")],
        [
            ("w", "hosts = [\"*.example.com\"]\n"),
            ("x", "hosts = [\"example.com\"]\n"),
        ],
        [
            ("w", "hosts = [\"*.b.example.com\"]\n"),
            ("x", "hosts = [\"*.example.com\"]\n"),
        ],
        [
            ("w", "hosts = [\"a\"]\n"),
            ("x", "hosts = [\"a\", \"b\"]\n"),
        ],
        // A prefix is not covered by an exact path, nor a longer prefix by a shorter one.
        [
            ("p", "exact_paths = [\"/a\"]\n"),
            ("x", "paths = [\"/a\"]\n"),
        ],
        [
            ("p", "paths = [\"/api/v1\"]\n"),
            ("x", "paths = [\"/api/\"]\n"),
        ],
        [("p", "paths = [\"/api\"]\n"), ("x", "")],
        // A regex is only covered by a site that matches any path.
        [
            ("p", "paths = [\"/\"]\n"),
            ("x", "path_regex = [\"^/x\"]\n"),
        ],
        [
            ("p", "path_regex = [\".*\"]\n"),
            ("x", "paths = [\"/x\"]\n"),
        ],
        // Fewer methods or schemes, or some against all.
        [
            ("m", "methods = [\"GET\"]\n"),
            ("x", "methods = [\"GET\", \"POST\"]\n"),
        ],
        [("m", "methods = [\"GET\"]\n"), ("x", "")],
        [("s", "schemes = [\"http\"]\n"), ("x", "")],
        [
            ("s", "schemes = [\"http\"]\n"),
            ("x", "schemes = [\"https\"]\n"),
        ],
    ];
    for pair in reachable {
        assert_eq!(unreachable(&pair), Vec::<String>::new(), "{pair:?}");
    }
    // Every shadowed site is reported, each against the earliest site covering it.
    let e = unreachable(&[
        ("api", "hosts = [\"api.example.com\"]\n"),
        ("all", ""),
        ("a2", "hosts = [\"api.example.com\"]\npaths = [\"/v2/\"]\n"),
        ("b", "hosts = [\"b.example.com\"]\n"),
    ]);
    assert_eq!(
        e,
        [
            "site[2] \"a2\" can never match: site[0] \"api\" matches every request it would",
            "site[3] \"b\" can never match: site[1] \"all\" matches every request it would",
        ]
    );
}

#[test]
fn counts_are_bounded() {
    let mut text = String::from(ORIGIN);
    for i in 0..=MAX_GROUPS {
        text.push_str(&format!(
            "[[origin_group]]\nname = \"g{i}\"\nservers = [{{ address = \"h:1\" }}]\n"
        ));
    }
    let e = one_error(&text);
    assert_eq!(
        e,
        "t.toml:3: origin_group: 1001 groups; at most 1000 are allowed"
    );

    let mut text = String::from(ORIGIN);
    for i in 0..=MAX_SITES {
        text.push_str(&format!(
            "[[site]]\nname = \"s{i}\"\nexact_paths = [\"/{i}\"]\n"
        ));
    }
    let e = one_error(&text);
    assert_eq!(e, "t.toml:3: site: 10001 sites; at most 10000 are allowed");
}
