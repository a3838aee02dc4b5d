//! `[control]`: the control plane across PoPs on NATS JetStream (`crate::control`).
//! With no `nats` servers listed it is off, and the node works as it does alone.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units;
use super::validate::Checker;

/// Most NATS server URLs: a seed list, the client learns the rest of a NATS cluster.
pub const MAX_SERVERS: usize = 32;
/// Bound on `max_msgs`: the stream lives on the NATS server's disk.
pub const MAX_STREAM_MSGS: i64 = 10_000_000;
/// JetStream names: no spaces, dots, `*`, `>`, path separators; kept short.
const MAX_NAME: usize = 64;

/// The control plane: which NATS servers, which credentials, which stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// NATS server URLs (`nats://host:port`, `tls://host:port`); empty = off.
    pub nats: Vec<String>,
    /// A file holding the NATS token.
    pub token_file: Option<PathBuf>,
    /// A NATS credentials file (user JWT and NKey seed).
    pub creds_file: Option<PathBuf>,
    /// The JetStream stream holding control messages.
    pub stream: String,
    /// The subject control messages are published on; receipts go to
    /// `<subject>.applied.<id>` (core NATS, not stored).
    pub subject: String,
    /// How long a global admin call waits for receipts before it answers.
    #[serde(deserialize_with = "units::de_duration")]
    pub apply_deadline: Duration,
    /// How long a starting node stays unready while it applies the backlog its
    /// consumer holds; past it (NATS unreachable, say) the node turns ready anyway.
    #[serde(deserialize_with = "units::de_duration")]
    pub catch_up_timeout: Duration,
    /// Messages (and large pushed bodies) older than this are dropped from the stream.
    #[serde(deserialize_with = "units::de_duration")]
    pub max_age: Duration,
    /// Most messages the stream keeps; the oldest go first.
    pub max_msgs: i64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            nats: Vec::new(),
            token_file: None,
            creds_file: None,
            stream: "LACQUER_CONTROL".to_owned(),
            subject: "lacquer.control".to_owned(),
            apply_deadline: Duration::from_secs(2),
            catch_up_timeout: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 3600),
            max_msgs: 1_000_000,
        }
    }
}

impl ControlConfig {
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }

    /// The NATS token, when `token_file` is set (read like the admin token).
    pub fn read_token(&self) -> Result<Option<String>, String> {
        match &self.token_file {
            None => Ok(None),
            Some(path) => super::validate::read_token_file(path).map(Some),
        }
    }
}

pub(super) fn check(c: &mut Checker<'_, '_>, k: &ControlConfig) {
    if k.nats.len() > MAX_SERVERS {
        c.fail(
            "control.nats",
            format!(
                "control.nats lists {} servers; at most {MAX_SERVERS}",
                k.nats.len()
            ),
        );
    }
    for url in &k.nats {
        if let Err(e) = check_url(url) {
            c.fail("control.nats", format!("control.nats: {url:?}: {e}"));
        }
    }
    if k.token_file.is_some() && k.creds_file.is_some() {
        c.fail(
            "control.creds_file",
            "control: give token_file or creds_file, not both".to_owned(),
        );
    }
    if let Some(path) = &k.token_file {
        if let Err(e) = super::validate::read_token_file(path) {
            c.fail("control.token_file", format!("control.token_file: {e}"));
        }
    }
    if let Some(path) = &k.creds_file {
        if !path.is_file() {
            c.fail(
                "control.creds_file",
                format!(
                    "control.creds_file: {} is not a readable file",
                    path.display()
                ),
            );
        }
    }
    if !is_name(&k.stream) {
        c.fail(
            "control.stream",
            format!(
                "control.stream {:?} must be 1 to {MAX_NAME} letters, digits, '-' or '_'",
                k.stream
            ),
        );
    }
    let tokens_ok = k.subject.len() <= 200
        && k.subject.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !tokens_ok {
        c.fail(
            "control.subject",
            format!(
                "control.subject {:?} must be dot-separated tokens of letters, digits, '-' or '_' (no wildcards)",
                k.subject
            ),
        );
    }
    c.nonzero_duration("control.apply_deadline", k.apply_deadline);
    if k.apply_deadline > Duration::from_secs(60) {
        c.fail(
            "control.apply_deadline",
            "control.apply_deadline must be at most 60s: an admin call waits that long".to_owned(),
        );
    }
    c.nonzero_duration("control.catch_up_timeout", k.catch_up_timeout);
    if k.max_age < Duration::from_secs(60) {
        c.fail(
            "control.max_age",
            "control.max_age must be at least 1m: a node down longer than it misses messages"
                .to_owned(),
        );
    }
    if !(1..=MAX_STREAM_MSGS).contains(&k.max_msgs) {
        c.fail(
            "control.max_msgs",
            format!("control.max_msgs must be from 1 to {MAX_STREAM_MSGS}"),
        );
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = ["nats://", "tls://"]
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .ok_or("must start with nats:// or tls://")?;
    // Credentials belong in token_file / creds_file, not in a URL that gets logged.
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() || host_port.contains(['/', '@', ' ']) {
        return Err("expected nats://host:port".to_owned());
    }
    Ok(())
}

/// A stream or consumer name NATS accepts, and that is safe in a subject.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
