//! `lacquer stat`: a live view of a node's main counters and rates, like varnishstat,
//! read from the admin API's /metrics.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::{Api, Connect};
use crate::metrics::RESULTS;

#[derive(Args, Debug)]
pub struct StatArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Seconds between refreshes.
    #[arg(long, short, default_value_t = 1.0)]
    pub interval: f64,
    /// Print one sample (counters since start) and exit: for scripts.
    #[arg(long)]
    pub once: bool,
}

/// Samples by `name{labels}`.
type Samples = HashMap<String, f64>;

fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sum(s: &Samples, prefix: &str, must_contain: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(must_contain))
        .map(|(_, v)| *v)
        .sum()
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:5.1}%", 100.0 * a / b)
    } else {
        "    -".to_owned()
    }
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// The screen: totals since start and, with a previous sample, rates per second.
fn render(now: &Samples, prev: Option<(&Samples, f64)>) -> String {
    let mut out = String::new();
    let rate = |key_prefix: &str, filter: &str| -> String {
        let total = sum(now, key_prefix, filter);
        match prev {
            Some((p, secs)) if secs > 0.0 => {
                format!(
                    "{:>10.1}/s {:>12}",
                    (total - sum(p, key_prefix, filter)) / secs,
                    total
                )
            }
            _ => format!("{:>12} {:>12}", "", total),
        }
    };
    out.push_str(&format!("{:<26} {:>12} {:>12}\n", "", "rate", "total"));
    out.push_str(&format!(
        "{:<26} {}\n",
        "requests",
        rate("lacquer_requests_total", "")
    ));
    for r in RESULTS {
        out.push_str(&format!(
            "{:<26} {}\n",
            format!("  {r}"),
            rate("lacquer_requests_total", &format!("result=\"{r}\""))
        ));
    }
    for class in ["4xx", "5xx"] {
        out.push_str(&format!(
            "{:<26} {}\n",
            format!("  status {class}"),
            rate("lacquer_requests_total", &format!("status=\"{class}\""))
        ));
    }
    let (hits, all, hit_bytes, all_bytes) = match prev {
        Some((p, _)) => {
            let d = |k: &str, f: &str| sum(now, k, f) - sum(p, k, f);
            (
                d("lacquer_requests_total", "result=\"hit\"")
                    + d("lacquer_requests_total", "result=\"stale\""),
                d("lacquer_requests_total", ""),
                d("lacquer_response_body_bytes_total", "result=\"hit\"")
                    + d("lacquer_response_body_bytes_total", "result=\"stale\""),
                d("lacquer_response_body_bytes_total", ""),
            )
        }
        None => (
            sum(now, "lacquer_requests_total", "result=\"hit\"")
                + sum(now, "lacquer_requests_total", "result=\"stale\""),
            sum(now, "lacquer_requests_total", ""),
            sum(now, "lacquer_response_body_bytes_total", "result=\"hit\"")
                + sum(now, "lacquer_response_body_bytes_total", "result=\"stale\""),
            sum(now, "lacquer_response_body_bytes_total", ""),
        ),
    };
    out.push_str(&format!(
        "{:<26} {:>12}\n",
        "hit ratio (requests)",
        ratio(hits, all)
    ));
    out.push_str(&format!(
        "{:<26} {:>12}\n",
        "hit ratio (bytes)",
        ratio(hit_bytes, all_bytes)
    ));
    out.push_str(&format!(
        "{:<26} {}\n",
        "origin requests",
        rate("lacquer_origin_requests_total", "")
    ));
    for outcome in ["5xx", "error", "timeout"] {
        out.push_str(&format!(
            "{:<26} {}\n",
            format!("  {outcome}"),
            rate(
                "lacquer_origin_requests_total",
                &format!("outcome=\"{outcome}\"")
            )
        ));
    }
    out.push_str(&format!(
        "{:<26} {}\n",
        "stale served",
        rate("lacquer_stale_served_total", "")
    ));
    out.push_str(&format!(
        "{:<26} {}\n",
        "cache insertions",
        rate("lacquer_cache_insertions_total", "")
    ));
    out.push_str(&format!(
        "{:<26} {}\n",
        "cache evictions",
        rate("lacquer_cache_evictions_total", "")
    ));
    out.push_str(&format!(
        "{:<26} {}\n",
        "purged objects",
        rate("lacquer_purged_objects_total", "")
    ));
    out.push_str(&format!(
        "{:<26} {}\n",
        "connections accepted",
        rate("lacquer_connections_accepted_total", "")
    ));
    out.push_str(&format!(
        "{:<26} {:>12}\n",
        "connections open",
        sum(now, "lacquer_connections_open", "")
    ));
    out.push_str(&format!(
        "{:<26} {:>12}\n",
        "coalesced waiters now",
        sum(now, "lacquer_coalesced_waiters", "")
    ));
    out.push_str(&format!(
        "{:<26} {:>12}\n",
        "cache objects",
        sum(now, "lacquer_cache_objects", "")
    ));
    out.push_str(&format!(
        "{:<26} {:>12} of {}\n",
        "cache memory",
        human(sum(now, "lacquer_cache_bytes", "")),
        human(sum(now, "lacquer_cache_capacity_bytes", ""))
    ));
    out
}

pub fn stat(args: StatArgs) -> ExitCode {
    let api = match Api::new(&args.connect) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let every = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    let tty = std::io::stdout().is_terminal();
    runtime.block_on(async move {
        let mut prev: Option<(Samples, Instant)> = None;
        loop {
            let text = match api.text("/metrics").await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let now = parse(&text);
            let taken = Instant::now();
            let screen = render(
                &now,
                prev.as_ref()
                    .map(|(s, t)| (s, taken.duration_since(*t).as_secs_f64())),
            );
            let mut stdout = std::io::stdout().lock();
            if tty {
                // Home and clear, like varnishstat: one screen that updates in place.
                let _ = write!(stdout, "\x1b[H\x1b[2J");
            }
            let _ = writeln!(stdout, "{screen}");
            let _ = stdout.flush();
            if args.once {
                return ExitCode::SUCCESS;
            }
            prev = Some((now, taken));
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rates_and_ratios() {
        let a = parse("lacquer_requests_total{result=\"hit\",status=\"2xx\"} 10\nlacquer_requests_total{result=\"miss\",status=\"2xx\"} 10\n");
        let b = parse("lacquer_requests_total{result=\"hit\",status=\"2xx\"} 28\nlacquer_requests_total{result=\"miss\",status=\"2xx\"} 12\n");
        let screen = render(&b, Some((&a, 2.0)));
        assert!(screen.contains("hit ratio (requests)"));
        assert!(screen.contains(" 90.0%"), "{screen}");
        assert!(screen.contains("10.0/s"), "{screen}");
    }
}
