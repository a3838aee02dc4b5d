//! Server-sent events bench (issue 13): how much delay and CPU a proxy adds to a live
//! event stream. Not a test: it measures, it asserts nothing.
//!
//! One process runs both ends, so an event's send and receive times are read from the
//! same clock: an SSE origin on loopback that writes one event every `--interval-ms`
//! (100) to each client, each event carrying the time it was written, and `--clients`
//! (1000) SSE clients that connect either straight to the origin or to `--proxy`
//! (a proxy configured with `--origin-listen` as its origin). For every event received
//! during the measured window the client records receive time − send time.
//!
//!   cargo build --release --example sse_bench
//!   target/release/examples/sse_bench --origin-listen 127.0.0.1:19300 \
//!       [--proxy 127.0.0.1:19301 --pid PROXY_PID] [--clients 1000] [--duration 10]
//!
//! With `--pid`, the CPU time (utime + stime, all threads) of that process and its
//! descendants is read from /proc before and after the window: the proxy's CPU. The last
//! line of output is `RESULT {json}` for scripts (`benches/sse.sh`).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep_until, timeout, timeout_at, Instant, MissedTickBehavior};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Address the SSE origin listens on (the proxy's configured origin).
    #[arg(long, default_value = "127.0.0.1:0")]
    origin_listen: SocketAddr,
    /// Connect the clients to this proxy instead of the origin.
    #[arg(long)]
    proxy: Option<SocketAddr>,
    /// PID of the proxy: its process tree's CPU time over the window is reported.
    #[arg(long)]
    pid: Option<u32>,
    /// Number of SSE clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Milliseconds between two events of one stream.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Bytes of padding in each event's data (a live score update is a few hundred).
    #[arg(long, default_value_t = 128)]
    event_bytes: usize,
    /// Seconds after the last client connected before the window opens.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Every stream sends at the same instants (a broadcast burst: all clients' events
    /// at once) instead of each on its own phase.
    #[arg(long)]
    aligned: bool,
    /// Request path of the event stream (every client asks for the same URL).
    #[arg(long, default_value = "/events")]
    path: String,
    /// Accept-Encoding the clients send, as browsers' EventSource does ("" for none).
    /// A compressed event stream is counted as an error: compressing it would hold
    /// events back in the encoder.
    #[arg(long, default_value = "gzip, deflate, br")]
    accept_encoding: String,
    /// Clients connected per 10 ms while ramping up.
    #[arg(long, default_value_t = 50)]
    connect_batch: usize,
}

/// Longest request head the origin reads; the clients here send a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Longest buffered, incomplete event a client keeps (events are a few hundred bytes).
const MAX_PENDING: usize = 64 * 1024;

/// The process's clock origin: send and receive stamps are microseconds since it.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn micros(self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[derive(Clone)]
struct OriginSettings {
    clock: Clock,
    interval: Duration,
    aligned: bool,
    pad: String,
    /// Events written so far, all streams together: under load the origin itself
    /// falls behind its ticks, and received events are compared with sent ones.
    sent: Arc<AtomicU64>,
}

async fn origin(listener: TcpListener, settings: OriginSettings) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let settings = settings.clone();
        tokio::spawn(async move {
            let _ = origin_connection(stream, settings).await;
        });
    }
}

/// Answers requests on one connection: the event stream path with an endless chunked
/// `text/event-stream`, anything else (health probes, readiness checks) with `ok`.
async fn origin_connection(mut s: TcpStream, settings: OriginSettings) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if buf.len() > MAX_HEAD {
                return Ok(());
            }
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        if path.starts_with("/events") {
            return stream_events(s, settings).await;
        }
        s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\
              Content-Length: 2\r\n\r\nok",
        )
        .await?;
    }
}

async fn stream_events(mut s: TcpStream, settings: OriginSettings) -> std::io::Result<()> {
    s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .await?;
    let start = if settings.aligned {
        // The next multiple of the interval on the shared clock: every stream ticks
        // together.
        let period = settings.interval.as_micros().max(1);
        let now = settings.clock.0.elapsed().as_micros();
        let next = (now / period + 1) * period;
        settings.clock.0 + Duration::from_micros(u64::try_from(next).unwrap_or(u64::MAX))
    } else {
        Instant::now() + settings.interval
    };
    let mut ticks = tokio::time::interval_at(start, settings.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    loop {
        ticks.tick().await;
        // Stamped as late as possible: the delay measured is the network path's, not
        // this process's scheduling before the write.
        let event = format!(
            "id: {seq}\ndata: {} {seq} {}\n\n",
            settings.clock.micros(),
            settings.pad
        );
        let framed = format!("{:x}\r\n{event}\r\n", event.len());
        s.write_all(framed.as_bytes()).await?;
        settings.sent.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
}

/// What one client saw during the window.
#[derive(Default)]
struct ClientReport {
    connected: bool,
    error: Option<String>,
    /// Microseconds from send to receive of each event received in the window.
    delays_us: Vec<u32>,
    /// Events missing from the sequence (dropped or never sent on time) in the window.
    gaps: u64,
}

struct Window {
    start: Instant,
    end: Instant,
}

/// What every client asks for.
struct ClientRequest {
    target: SocketAddr,
    path: String,
    accept_encoding: String,
}

async fn client(ask: Arc<ClientRequest>, clock: Clock, window: Arc<Window>) -> ClientReport {
    let mut report = ClientReport::default();
    if let Err(e) = client_run(&ask, clock, &window, &mut report).await {
        report.error = Some(e);
    }
    report
}

async fn client_run(
    ask: &ClientRequest,
    clock: Clock,
    window: &Window,
    report: &mut ClientReport,
) -> Result<(), String> {
    let stream = timeout(Duration::from_secs(10), TcpStream::connect(ask.target))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::get(ask.path.as_str())
        .header(hyper::header::HOST, ask.target.to_string())
        .header(hyper::header::ACCEPT, "text/event-stream");
    if !ask.accept_encoding.is_empty() {
        req = req.header(hyper::header::ACCEPT_ENCODING, ask.accept_encoding.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = timeout(Duration::from_secs(30), send.send_request(req))
        .await
        .map_err(|_| "no response head within 30 s".to_string())?
        .map_err(|e| format!("request: {e}"))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    if let Some(enc) = resp
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .filter(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(format!("compressed event stream ({enc:?})"));
    }
    report.connected = true;
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    let mut last_seq: Option<u64> = None;
    loop {
        let frame = match timeout_at(window.end, body.frame()).await {
            Err(_) => return Ok(()),
            Ok(None) => return Err("stream ended".into()),
            Ok(Some(Err(e))) => return Err(format!("body: {e}")),
            Ok(Some(Ok(f))) => f,
        };
        let received = clock.micros();
        let in_window = Instant::now() >= window.start;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let Some((sent, seq)) = parse_event(&event) else {
                return Err("malformed event".into());
            };
            if in_window {
                let delay = received.saturating_sub(sent);
                report
                    .delays_us
                    .push(u32::try_from(delay).unwrap_or(u32::MAX));
                if let Some(prev) = last_seq {
                    report.gaps += seq.saturating_sub(prev + 1);
                }
            }
            last_seq = Some(seq);
        }
        if pending.len() > MAX_PENDING {
            return Err("event larger than 64 KiB".into());
        }
    }
}

/// `(sent_us, seq)` from an event's `data: SENT SEQ PAD` line.
fn parse_event(event: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(event).ok()?;
    let data = text.lines().find_map(|l| l.strip_prefix("data: "))?;
    let mut fields = data.split(' ');
    let sent = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    Some((sent, seq))
}

/// What a process tree used: CPU seconds (utime + stime of every thread) and seconds
/// its threads were runnable but waiting for a CPU (run-queue wait, from schedstat):
/// the part of an event's delay that is the machine's contention, not the proxy's work.
#[derive(Clone, Copy)]
struct Usage {
    cpu_s: f64,
    runq_wait_s: f64,
}

/// [`Usage`] of `pid` and its descendants. /proc counts CPU in clock ticks of USER_HZ,
/// which is 100 on Linux's mainstream architectures.
fn tree_usage(pid: u32) -> Option<Usage> {
    const USER_HZ: f64 = 100.0;
    let mut stats: Vec<(u32, u32, u64)> = Vec::new(); // (pid, ppid, ticks)
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(ut), Some(st)) = (f.get(1), f.get(11), f.get(12)) else {
            continue;
        };
        let (Ok(ppid), Ok(ut), Ok(st)) = (ppid.parse(), ut.parse::<u64>(), st.parse::<u64>())
        else {
            continue;
        };
        stats.push((p, ppid, ut + st));
    }
    if !stats.iter().any(|s| s.0 == pid) {
        return None;
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(stats.iter().filter(|s| s.1 == parent).map(|s| s.0));
        i += 1;
    }
    let ticks: u64 = stats
        .iter()
        .filter(|s| tree.contains(&s.0))
        .map(|s| s.2)
        .sum();
    let wait_ns: u64 = tree.iter().map(|&p| runq_wait_ns(p)).sum();
    Some(Usage {
        cpu_s: ticks as f64 / USER_HZ,
        runq_wait_s: wait_ns as f64 / 1e9,
    })
}

/// Nanoseconds the threads of `pid` have waited on a run queue (second field of each
/// thread's schedstat; 0 where the kernel does not provide it).
fn runq_wait_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Busy and total ticks of all CPUs together, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("sse_bench: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let clock = Clock(Instant::now());
    let sent = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind(args.origin_listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.origin_listen))?;
    let origin_addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(origin(
        listener,
        OriginSettings {
            clock,
            interval: Duration::from_millis(args.interval_ms.max(1)),
            aligned: args.aligned,
            pad: "x".repeat(args.event_bytes),
            sent: sent.clone(),
        },
    ));
    let target = args.proxy.unwrap_or(origin_addr);
    let ask = Arc::new(ClientRequest {
        target,
        path: args.path.clone(),
        accept_encoding: args.accept_encoding.clone(),
    });
    let batch = args.connect_batch.max(1);
    let ramp = Duration::from_millis(10 * (args.clients.div_ceil(batch)) as u64);
    let start = Instant::now() + ramp + Duration::from_secs(args.warmup);
    let window = Arc::new(Window {
        start,
        end: start + Duration::from_secs(args.duration),
    });
    eprintln!(
        "sse_bench: origin {origin_addr}, {} clients -> {target}{}, window {} s after {} s warm-up",
        args.clients, args.path, args.duration, args.warmup
    );

    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        if i > 0 && i % batch == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tasks.push(tokio::spawn(client(ask.clone(), clock, window.clone())));
    }

    sleep_until(window.start).await;
    let proxy0 = args.pid.and_then(tree_usage);
    let self0 = tree_usage(std::process::id());
    let m0 = machine_ticks();
    let sent0 = sent.load(Ordering::Relaxed);
    sleep_until(window.end).await;
    let sent_in_window = sent.load(Ordering::Relaxed) - sent0;
    let proxy1 = args.pid.and_then(tree_usage);
    let self1 = tree_usage(std::process::id());
    let m1 = machine_ticks();

    let mut delays: Vec<u32> = Vec::new();
    let (mut connected, mut gaps) = (0usize, 0u64);
    let mut errors: Vec<String> = Vec::new();
    for t in tasks {
        // Every client stops at the window's end; a stuck one is not waited for long.
        match timeout(Duration::from_secs(5), t).await {
            Ok(Ok(r)) => {
                connected += usize::from(r.connected);
                gaps += r.gaps;
                delays.extend_from_slice(&r.delays_us);
                if let Some(e) = r.error {
                    errors.push(e);
                }
            }
            Ok(Err(e)) => errors.push(format!("client task: {e}")),
            Err(_) => errors.push("client did not stop".into()),
        }
    }
    delays.sort_unstable();
    let secs = args.duration as f64;
    let expected = (args.clients as f64 * secs * 1000.0 / args.interval_ms.max(1) as f64) as u64;
    let events = delays.len() as u64;
    let proxy_cpu = match (proxy0, proxy1) {
        (Some(a), Some(b)) => Some(round3(b.cpu_s - a.cpu_s)),
        _ => None,
    };
    let proxy_wait = match (proxy0, proxy1) {
        (Some(a), Some(b)) => Some(round3(b.runq_wait_s - a.runq_wait_s)),
        _ => None,
    };
    let self_cpu = match (self0, self1) {
        (Some(a), Some(b)) => Some(b.cpu_s - a.cpu_s),
        _ => None,
    };
    let self_wait = match (self0, self1) {
        (Some(a), Some(b)) => Some(round3(b.runq_wait_s - a.runq_wait_s)),
        _ => None,
    };
    // CPU busy on the machine that neither the proxy nor this process used (kernel
    // networking not charged to a process, other tenants), in % of one core.
    let other_pct = match (m0, m1, self_cpu) {
        (Some((b0, t0)), Some((b1, t1)), Some(me)) if t1 > t0 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let busy_core_s = (b1 - b0) as f64 / (t1 - t0) as f64 * cores * secs;
            Some(round3(
                100.0 * (busy_core_s - me - proxy_cpu.unwrap_or(0.0)) / secs,
            ))
        }
        _ => None,
    };
    let mut first_errors: Vec<String> = errors.clone();
    first_errors.sort();
    first_errors.dedup();
    first_errors.truncate(5);
    let result = serde_json::json!({
        "target": target.to_string(),
        "proxied": args.proxy.is_some(),
        "clients": args.clients,
        "connected": connected,
        "errors": errors.len(),
        "error_kinds": first_errors,
        "interval_ms": args.interval_ms,
        "aligned": args.aligned,
        "duration_s": args.duration,
        "events_expected": expected,
        "events_sent": sent_in_window,
        "events": events,
        "gaps": gaps,
        "p50_ms": round3(percentile_ms(&delays, 50.0)),
        "p90_ms": round3(percentile_ms(&delays, 90.0)),
        "p99_ms": round3(percentile_ms(&delays, 99.0)),
        "p999_ms": round3(percentile_ms(&delays, 99.9)),
        "max_ms": round3(percentile_ms(&delays, 100.0)),
        "proxy_cpu_s": proxy_cpu,
        "proxy_cpu_us_per_event": proxy_cpu.filter(|_| events > 0).map(|c| round3(c * 1e6 / events as f64)),
        "proxy_runq_wait_s": proxy_wait,
        "bench_cpu_pct": self_cpu.map(|c| round3(100.0 * c / secs)),
        "bench_runq_wait_s": self_wait,
        "other_cpu_pct": other_pct,
    });
    println!(
        "clients {connected}/{} connected, {events} events received, {sent_in_window} sent, \
         {expected} due, {gaps} missing; \
         delay p50 {} ms, p99 {} ms, max {} ms; proxy CPU {} s",
        args.clients, result["p50_ms"], result["p99_ms"], result["max_ms"], result["proxy_cpu_s"]
    );
    for e in &first_errors {
        println!("error: {e}");
    }
    println!("RESULT {result}");
    Ok(())
}
