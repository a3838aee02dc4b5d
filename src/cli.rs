//! `lacquer purge | prewarm | push | inspect | route`: a small client for a node's admin API.
//!
//! The node is named by `--admin ADDR` and `--token-file FILE`, or by `--config FILE`
//! (its `[admin]` section), so an operator on the node's host can use the node's own
//! config. Every failure is one clear line on stderr and exit status 1.

use std::io::{IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::config::{AdminConfig, Config};

const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6082);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough for a push of a large object over a slow link, short enough that a
/// hung node does not hang a script forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Admin answers are small; anything bigger is not an admin API.
const MAX_ANSWER: usize = 16 << 20;
/// Files read into memory for push and prewarm.
const MAX_PUSH_FILE: u64 = 1 << 30;
const MAX_URL_FILE: u64 = 64 << 20;
const MAX_URLS: usize = 100_000;
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Which nodes an admin call reaches.
#[derive(Args, Debug, Clone, Default)]
pub struct Reach {
    /// "node": this node only; "cluster": every node of the PoP (a purge), or the
    /// shard that owns each URL (a push or pre-warm); "global": the same in every PoP,
    /// through the control plane.
    #[arg(long, value_enum, default_value_t = Scope::Node)]
    pub scope: Scope,
    /// With --scope cluster or global, a push or pre-warm also reaches every edge.
    #[arg(long)]
    pub edges: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Node,
    Cluster,
    /// Every node of every PoP, through the control plane ([control] nats).
    Global,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Node => "node",
            Scope::Cluster => "cluster",
            Scope::Global => "global",
        }
    }
}

/// Where the admin API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct Connect {
    /// Admin API address, host:port (default: from --config, else 127.0.0.1:6082).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// File holding the bearer token (default: from --config).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Read the address and token file from this config's [admin] section.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Absolute URLs to purge (every variant of each).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Purge by surrogate key (repeatable).
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<String>,
    /// Purge every URL starting with this prefix, e.g. http://example.com/live/.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Purge everything.
    #[arg(long)]
    pub all: bool,
    /// Mark stale instead of removing: grace and stale-if-error still serve it.
    #[arg(long)]
    pub soft: bool,
    /// "node" (default), "cluster": every node of the PoP, or "global": every node of
    /// every PoP.
    #[arg(long, value_enum, default_value_t = Scope::Node)]
    pub scope: Scope,
}

#[derive(Args, Debug)]
pub struct PrewarmArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// File with one absolute URL a line (blank lines and # comments skipped).
    pub file: PathBuf,
    /// Fetches at once (1-64).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[command(flatten)]
    pub reach: Reach,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Absolute URL the object is stored under.
    pub url: String,
    /// File with the object's body.
    #[arg(long, value_name = "F")]
    pub file: PathBuf,
    /// Response header to store, 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "'Name: value'")]
    pub headers: Vec<String>,
    /// Seconds this cache keeps it fresh.
    #[arg(long, value_name = "S")]
    pub ttl: Option<u64>,
    /// Version: a push with a lower version cannot replace this one.
    #[arg(long, value_name = "V")]
    pub version: Option<u64>,
    /// Response status (default 200).
    #[arg(long)]
    pub status: Option<u16>,
    #[command(flatten)]
    pub reach: Reach,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Absolute URL to look up.
    pub url: String,
}

#[derive(Args, Debug)]
pub struct RouteArgs {
    /// Absolute URL to explain, e.g. https://api.example.com/v1/scores.
    pub url: String,
    /// Request method.
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// Explain from this config file, without a running node (before a deploy).
    /// Without it, the running node at --admin answers.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Admin API address of the running node, host:port (default 127.0.0.1:6082).
    #[arg(long, value_name = "ADDR", conflicts_with = "config")]
    pub admin: Option<String>,
    /// File holding the bearer token.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub token_file: Option<PathBuf>,
}

/// `lacquer route URL`: the site, origin group, cache rules and key for a URL.
pub fn route(args: RouteArgs) -> ExitCode {
    if let Some(path) = &args.config {
        let explained = Config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| crate::site::Sites::build(&cfg, None))
            .and_then(|sites| crate::site::explain::explain(&sites, &args.url, &args.method));
        return match explained {
            Ok(v) => {
                print!("{}", crate::site::explain::render(&v));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let connect = Connect {
        admin: args.admin.clone(),
        token_file: args.token_file.clone(),
        config: None,
    };
    run(&connect, |api| async move {
        let path = format!(
            "/route?url={}&method={}",
            encode(&args.url),
            encode(&args.method)
        );
        let answer = api.call(Method::GET, &path, Bytes::new(), &[]).await?;
        print!("{}", crate::site::explain::render(&answer));
        Ok(true)
    })
}

pub fn purge(args: PurgeArgs) -> ExitCode {
    run(&args.connect.clone(), |api| async move {
        purge_call(&api, &args).await
    })
}

pub fn prewarm(args: PrewarmArgs) -> ExitCode {
    run(&args.connect.clone(), |api| async move {
        prewarm_call(&api, &args).await
    })
}

pub fn push(args: PushArgs) -> ExitCode {
    run(&args.connect.clone(), |api| async move {
        push_call(&api, &args).await
    })
}

pub fn inspect(args: InspectArgs) -> ExitCode {
    run(&args.connect.clone(), |api| async move {
        let path = format!("/objects?url={}", encode(&args.url));
        let answer = api.call(Method::GET, &path, Bytes::new(), &[]).await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        Ok(true)
    })
}

/// Resolve the node, run one command on a small runtime, turn its outcome into an
/// exit status. The command returns Ok(false) for "ran, but not everything worked".
fn run<F, Fut>(connect: &Connect, command: F) -> ExitCode
where
    F: FnOnce(Api) -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let outcome = Api::new(connect).and_then(|api| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?
            .block_on(command(api))
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A connection to one node's admin API.
pub struct Api {
    addr: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub fn new(c: &Connect) -> Result<Api, String> {
        let cfg = match &c.config {
            Some(path) => Some(Config::load(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let addr = match (&c.admin, &cfg) {
            (Some(a), _) => normalize_addr(a)?,
            (None, Some(cfg)) => reachable(cfg.admin.address).to_string(),
            (None, None) => DEFAULT_ADMIN.to_string(),
        };
        let token = match (&c.token_file, &cfg) {
            (Some(path), _) => read_token(path)?,
            (None, Some(cfg)) => cfg.admin.read_token()?,
            (None, None) => None,
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Api {
            addr,
            token,
            client,
        })
    }

    /// A GET whose answer is text (the metrics exposition).
    pub async fn text(&self, path: &str) -> Result<String, String> {
        let req = self.request(Method::GET, path, Bytes::new(), &[])?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| format!("admin API at {} did not answer in time", self.addr))?
            .map_err(|e| format!("cannot reach admin API at {}: {}", self.addr, chain(&e)))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("admin API at {}: cannot read the answer: {e}", self.addr))?
            .to_bytes();
        if !status.is_success() {
            let value: Option<Value> = serde_json::from_slice(&bytes).ok();
            return Err(self.failure(status, value.as_ref(), &bytes));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// One call; the JSON answer on 2xx, else a message that says what went wrong.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Value, String> {
        let req = self.request(method, path, body, headers)?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| {
                format!(
                    "admin API at {} did not answer within {}s",
                    self.addr,
                    REQUEST_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| {
                if e.is_connect() {
                    format!("cannot reach admin API at {}: {}", self.addr, chain(&e))
                } else {
                    format!("admin API at {}: {}", self.addr, chain(&e))
                }
            })?;
        let status = resp.status();
        let bytes = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(resp.into_body(), MAX_ANSWER).collect(),
        )
        .await
        .map_err(|_| format!("admin API at {}: answer not received in time", self.addr))?
        .map_err(|e| format!("admin API at {}: cannot read the answer: {e}", self.addr))?
        .to_bytes();
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return value.ok_or_else(|| format!("admin API at {}: answer is not JSON", self.addr));
        }
        Err(self.failure(status, value.as_ref(), &bytes))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "the token contains characters not allowed in a header".to_string())?;
            req = req.header(header::AUTHORIZATION, value);
        }
        req.body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))
    }

    fn failure(&self, status: StatusCode, value: Option<&Value>, raw: &[u8]) -> String {
        if status == StatusCode::UNAUTHORIZED {
            return match self.token {
                Some(_) => format!("token rejected by the admin API at {}", self.addr),
                None => format!(
                    "the admin API at {} needs a token: give --token-file or --config",
                    self.addr
                ),
            };
        }
        let message = value
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(raw.get(..200).unwrap_or(raw))
                    .trim()
                    .to_owned()
            });
        format!(
            "admin API at {} answered {}: {message}",
            self.addr,
            status.as_u16()
        )
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `host:port`, optionally written as `http://host:port/`.
fn normalize_addr(a: &str) -> Result<String, String> {
    let rest = match a.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "--admin {a:?}: only http:// is supported, not {scheme}://"
            ))
        }
        None => a,
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("--admin {a:?}: expected host:port"));
    }
    Ok(host.to_owned())
}

/// A node listening on 0.0.0.0 / [::] is reached on loopback from its own host.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// Same rules as the node's own token file (bounded, trimmed, not empty).
fn read_token(path: &Path) -> Result<Option<String>, String> {
    AdminConfig {
        token_file: Some(path.to_path_buf()),
        ..AdminConfig::default()
    }
    .read_token()
    .map_err(|e| format!("--token-file: {e}"))
}

/// Percent-encode a query value: everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("{shown} is larger than {max} bytes"));
    }
    Ok(bytes)
}

fn purge_body(args: &PurgeArgs) -> Result<Value, String> {
    let kinds = [
        !args.urls.is_empty(),
        !args.keys.is_empty(),
        args.prefix.is_some(),
        args.all,
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("give exactly one of: URL..., --key K..., --prefix P, --all".into());
    }
    let mut body = if !args.urls.is_empty() {
        json!({ "urls": args.urls })
    } else if !args.keys.is_empty() {
        json!({ "surrogate_keys": args.keys })
    } else if let Some(p) = &args.prefix {
        json!({ "prefix": p })
    } else {
        json!({ "all": true })
    };
    body["soft"] = Value::Bool(args.soft);
    body["scope"] = Value::from(args.scope.name());
    Ok(body)
}

async fn purge_call(api: &Api, args: &PurgeArgs) -> Result<bool, String> {
    let body = purge_body(args)?;
    let answer = api
        .call(
            Method::POST,
            "/purge",
            Bytes::from(body.to_string()),
            &[json_type()],
        )
        .await?;
    if answer["scope"] == "global" {
        return Ok(print_global(&answer));
    }
    let verb = if args.soft { "marked stale" } else { "purged" };
    for node in answer["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let name = node["node"].as_str().unwrap_or("?");
        match node["error"].as_str() {
            Some(e) if node["pending"] == true => println!("{name}: pending ({e})"),
            Some(e) => println!("{name}: failed ({e})"),
            None => println!(
                "{name}: {verb} {} objects ({} URLs)",
                node["purged"]["objects"], node["purged"]["urls"],
            ),
        }
    }
    if let Some(note) = answer["note"].as_str() {
        eprintln!("note: {note}");
    }
    Ok(true)
}

/// A global call's answer: each node that applied it within the deadline, then those
/// that will when they consume it. True when none refused it.
fn print_global(a: &Value) -> bool {
    println!(
        "published {} {} (stream seq {})",
        a["kind"].as_str().unwrap_or("?"),
        a["id"].as_str().unwrap_or("?"),
        a["seq"]
    );
    let mut all_ok = true;
    for r in a["applied"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let ok = r["ok"] == true;
        all_ok &= ok;
        println!(
            "{}: {}{}",
            r["node"].as_str().unwrap_or("?"),
            if ok { "" } else { "refused: " },
            r["result"].as_str().unwrap_or("?")
        );
    }
    for w in a["waiting"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!("{}: not yet applied", w.as_str().unwrap_or("?"));
    }
    if let Some(note) = a["note"].as_str() {
        eprintln!("note: {note}");
    }
    all_ok
}

fn json_type() -> (HeaderName, HeaderValue) {
    (
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )
}

fn url_list(path: &Path) -> Result<Vec<String>, String> {
    let bytes = read_file(path, MAX_URL_FILE)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    let urls: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err(format!("{} lists no URLs", path.display()));
    }
    if urls.len() > MAX_URLS {
        return Err(format!(
            "{} lists {} URLs; at most {MAX_URLS} per job",
            path.display(),
            urls.len()
        ));
    }
    Ok(urls)
}

async fn prewarm_call(api: &Api, args: &PrewarmArgs) -> Result<bool, String> {
    let urls = url_list(&args.file)?;
    let body = json!({
        "urls": urls,
        "concurrency": args.concurrency,
        "scope": args.reach.scope.name(),
        "edges": args.reach.edges,
    });
    check_reach(&args.reach)?;
    let started = api
        .call(
            Method::POST,
            "/prewarm",
            Bytes::from(body.to_string()),
            &[json_type()],
        )
        .await?;
    if started["scope"] == "global" {
        return Ok(print_global(&started));
    }
    let id = started["id"]
        .as_u64()
        .ok_or("admin API answered without a job id")?;
    let status = poll(api, id).await?;
    Ok(summarize(&status))
}

/// Poll until the job ends; Ctrl-C cancels the job on the node too.
async fn poll(api: &Api, id: u64) -> Result<Value, String> {
    let path = format!("/prewarm/{id}");
    let progress = std::io::stderr().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = &mut ctrl_c => {
                if progress { eprintln!(); }
                eprintln!("interrupted: cancelling prewarm job {id}");
                return api.call(Method::DELETE, &path, Bytes::new(), &[]).await;
            }
        }
        let status = api.call(Method::GET, &path, Bytes::new(), &[]).await?;
        let running = status["state"].as_str() == Some("running");
        if progress {
            let finished =
                status["done"].as_u64().unwrap_or(0) + status["failed"].as_u64().unwrap_or(0);
            let mut err = std::io::stderr();
            // \r and "erase to end of line" redraw one line in place.
            let _ = write!(
                err,
                "\r\x1b[Kprewarm {id}: {finished}/{} ({} failed)",
                status["total"], status["failed"]
            );
            let _ = err.flush();
            if !running {
                let _ = writeln!(err);
            }
        }
        if !running {
            return Ok(status);
        }
    }
}

/// Print the outcome; true when every URL was fetched.
fn summarize(s: &Value) -> bool {
    println!(
        "prewarm job {} {}: {} URLs, {} fetched, {} failed, {} not fetched",
        s["id"],
        s["state"].as_str().unwrap_or("?"),
        s["total"],
        s["done"],
        s["failed"],
        s["remaining"]
    );
    for f in s["failures"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!(
            "  {}: {}",
            f["url"].as_str().unwrap_or("?"),
            f["reason"].as_str().unwrap_or("?")
        );
    }
    let unlisted = s["failures_not_listed"].as_u64().unwrap_or(0);
    if unlisted > 0 {
        println!("  ... and {unlisted} more failures");
    }
    s["state"].as_str() == Some("done") && s["failed"].as_u64() == Some(0)
}

fn check_reach(reach: &Reach) -> Result<(), String> {
    if reach.edges && reach.scope == Scope::Node {
        return Err("--edges goes with --scope cluster or global".into());
    }
    Ok(())
}

fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("--header {h:?}: invalid field name"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("--header {h:?}: invalid field value"))?;
    Ok((name, value))
}

async fn push_call(api: &Api, args: &PushArgs) -> Result<bool, String> {
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let body = read_file(&args.file, MAX_PUSH_FILE)?;
    check_reach(&args.reach)?;
    let mut path = format!("/objects?url={}", encode(&args.url));
    if args.reach.scope != Scope::Node {
        path.push_str("&scope=");
        path.push_str(args.reach.scope.name());
        if args.reach.edges {
            path.push_str("&edges=true");
        }
    }
    for (name, v) in [
        ("ttl", args.ttl),
        ("version", args.version),
        ("status", args.status.map(u64::from)),
    ] {
        if let Some(v) = v {
            path.push_str(&format!("&{name}={v}"));
        }
    }
    let a = api
        .call(Method::PUT, &path, Bytes::from(body), &headers)
        .await?;
    if a["scope"] == "global" {
        return Ok(print_global(&a));
    }
    if a["scope"] == "cluster" {
        println!(
            "{}: {}",
            a["node"].as_str().unwrap_or("?"),
            a["local"]["result"].as_str().unwrap_or("?")
        );
        let mut all_ok = true;
        for n in a["nodes"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let name = n["node"].as_str().unwrap_or("?");
            match n["error"].as_str() {
                Some(e) => {
                    all_ok = false;
                    println!("{name}: failed ({e})");
                }
                None => println!("{name}: stored"),
            }
        }
        return Ok(all_ok);
    }
    println!(
        "stored {}: {} bytes, status {}, ttl {}s{}",
        a["url"].as_str().unwrap_or(&args.url),
        a["size"],
        a["status"],
        a["ttl"],
        a["version"]
            .as_u64()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default()
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            encode("http://h/a?b=1&c=d e"),
            "http%3A%2F%2Fh%2Fa%3Fb%3D1%26c%3Dd%20e"
        );
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
    }

    #[test]
    fn admin_addresses() {
        assert_eq!(normalize_addr("127.0.0.1:6082").unwrap(), "127.0.0.1:6082");
        assert_eq!(normalize_addr("http://node:6082/").unwrap(), "node:6082");
        assert!(normalize_addr("https://node:6082").is_err());
        assert!(normalize_addr("").is_err());
        assert!(normalize_addr("node:1/x").is_err());
        assert_eq!(
            reachable("0.0.0.0:6082".parse().unwrap()),
            "127.0.0.1:6082".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn headers_parse() {
        let (n, v) = parse_header("Content-Type: text/html; charset=utf-8").unwrap();
        assert_eq!(n, header::CONTENT_TYPE);
        assert_eq!(v, "text/html; charset=utf-8");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    fn purge_args(urls: &[&str], keys: &[&str], prefix: Option<&str>, all: bool) -> PurgeArgs {
        PurgeArgs {
            connect: Connect {
                admin: None,
                token_file: None,
                config: None,
            },
            urls: urls.iter().map(|s| s.to_string()).collect(),
            keys: keys.iter().map(|s| s.to_string()).collect(),
            prefix: prefix.map(str::to_owned),
            all,
            soft: true,
            scope: Scope::Node,
        }
    }

    #[test]
    fn purge_needs_exactly_one_kind() {
        assert!(purge_body(&purge_args(&[], &[], None, false)).is_err());
        assert!(purge_body(&purge_args(&["http://a/"], &["k"], None, false)).is_err());
        let b = purge_body(&purge_args(&[], &["k"], None, false)).unwrap();
        assert_eq!(
            b,
            json!({"surrogate_keys": ["k"], "soft": true, "scope": "node"})
        );
        let b = purge_body(&purge_args(&[], &[], None, true)).unwrap();
        assert_eq!(b["all"], true);
    }

    #[test]
    fn summary_exit_status() {
        assert!(summarize(
            &json!({"id":1,"state":"done","total":2,"done":2,"failed":0,"remaining":0,"failures":[]})
        ));
        assert!(!summarize(
            &json!({"id":1,"state":"done","total":2,"done":1,"failed":1,"remaining":0,
            "failures":[{"url":"http://a/","reason":"status 404"}]})
        ));
        assert!(!summarize(
            &json!({"id":1,"state":"cancelled","total":2,"done":0,"failed":0,"remaining":2})
        ));
    }
}
