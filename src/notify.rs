//! systemd readiness protocol (sd_notify): READY, RELOADING, STOPPING and watchdog pings.
//!
//! Written by hand rather than with a crate: it is one datagram to the socket named in
//! `$NOTIFY_SOCKET`, and doing nothing when the variable is unset keeps it harmless
//! outside systemd.

use std::time::Duration;

/// Send one state string; false when not under systemd or the send failed.
pub fn notify(state: &str) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};

        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return false;
        };
        let Ok(sock) = UnixDatagram::unbound() else {
            return false;
        };
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            // A leading '@' names a socket in the abstract namespace.
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(std::path::Path::new(&path)),
        };
        match addr {
            Ok(addr) => sock.send_to_addr(state.as_bytes(), &addr).is_ok(),
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = state;
        false
    }
}

pub fn ready() {
    notify("READY=1\nSTATUS=serving");
}

/// `Type=notify-reload` and `Type=notify` both accept RELOADING=1 with the monotonic time.
pub fn reloading() {
    let usec = monotonic_usec();
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

pub fn stopping() {
    notify("STOPPING=1");
}

/// How often to ping the watchdog: half of `WatchdogSec`, when systemd asked for one.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Ping the watchdog from the runtime: if the runtime stops making progress, the pings
/// stop and systemd restarts the service.
pub fn spawn_watchdog() {
    if let Some(every) = watchdog_interval() {
        tokio::spawn(async move {
            loop {
                notify("WATCHDOG=1");
                tokio::time::sleep(every).await;
            }
        });
    }
}

fn monotonic_usec() -> u128 {
    // CLOCK_MONOTONIC is what systemd compares against; /proc/uptime is the portable
    // way to read it without libc.
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1_000_000.0) as u128)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_to_a_notify_socket() {
        let dir = std::env::temp_dir().join(format!("lacquer-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(super::notify("READY=1"));
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!super::notify("READY=1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
