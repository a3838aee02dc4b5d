//! Turning TOML text into a [`Config`], with every error tied to a line.
//!
//! Each top-level section is deserialized on its own so that a type error in
//! `[cache]` does not hide another one in `[admin]`: the operator sees all of
//! them in one `check-config` run.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::validate;
use super::{Config, ConfigError, ConfigErrors};

const TOP_LEVEL_KEYS: [&str; 15] = [
    "node",
    "listen",
    "origin",
    "origin_group",
    "site",
    "upstream",
    "cache",
    "limits",
    "admin",
    "log",
    "client",
    "geo",
    "cluster",
    "compression",
    "control",
];

pub(crate) fn parse(text: &str, file: &str, base: Option<&Path>) -> Result<Config, ConfigErrors> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let locator = Locator {
        file,
        text,
        root: Some(root.get_ref().clone()),
    };
    if !syntax_errors.is_empty() {
        let errors = syntax_errors
            .iter()
            .map(|e| locator.toml_error(e))
            .collect();
        return Err(sorted(errors));
    }

    let mut config = Config::default();
    let mut errors = Vec::new();
    for (key, value) in root.into_inner() {
        if let Err(e) = set_section(&mut config, key.get_ref(), value) {
            errors.push(match e {
                SectionError::Toml(e) => locator.toml_error(&e),
                SectionError::UnknownKey(name) => locator.at_span(
                    key.span(),
                    format!(
                        "unknown field `{name}`, expected one of {}",
                        expected_keys()
                    ),
                ),
            });
        }
    }
    if !errors.is_empty() {
        return Err(sorted(errors));
    }

    if let Some(base) = base {
        resolve_paths(&mut config, base);
    }
    let errors = validate::validate(&config, &locator);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(sorted(errors))
    }
}

enum SectionError {
    Toml(toml::de::Error),
    UnknownKey(String),
}

fn set_section(
    config: &mut Config,
    key: &str,
    value: Spanned<DeValue<'_>>,
) -> Result<(), SectionError> {
    fn de<'i, T: Deserialize<'i>>(value: Spanned<DeValue<'i>>) -> Result<T, SectionError> {
        T::deserialize(ValueDeserializer::from(value)).map_err(SectionError::Toml)
    }
    match key {
        "node" => config.node = de(value)?,
        "listen" => config.listen = de(value)?,
        "origin" => config.origin = de(value)?,
        "origin_group" => config.origin_group = de(value)?,
        "site" => config.site = de(value)?,
        "upstream" => config.upstream = de(value)?,
        "cache" => config.cache = de(value)?,
        "limits" => config.limits = de(value)?,
        "admin" => config.admin = de(value)?,
        "log" => config.log = de(value)?,
        "client" => config.client = de(value)?,
        "geo" => config.geo = de(value)?,
        "cluster" => config.cluster = de(value)?,
        "compression" => config.compression = de(value)?,
        "control" => config.control = de(value)?,
        other => return Err(SectionError::UnknownKey(other.to_string())),
    }
    Ok(())
}

fn expected_keys() -> String {
    TOP_LEVEL_KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| e.line.unwrap_or(0));
    ConfigErrors { errors }
}

/// Relative paths are taken relative to the configuration file, so that
/// `lacquer -c /etc/lacquer/lacquer.toml` works from any directory.
fn resolve_paths(config: &mut Config, base: &Path) {
    for listen in &mut config.listen {
        if let Some(tls) = &mut listen.tls {
            if tls.cert.is_relative() && !tls.cert.as_os_str().is_empty() {
                tls.cert = base.join(&tls.cert);
            }
            if tls.key.is_relative() && !tls.key.as_os_str().is_empty() {
                tls.key = base.join(&tls.key);
            }
            for extra in &mut tls.sni {
                for file in [&mut extra.cert, &mut extra.key] {
                    if file.is_relative() && !file.as_os_str().is_empty() {
                        *file = base.join(&*file);
                    }
                }
            }
        }
    }
    let group_cas = config.origin_group.iter_mut().map(|g| &mut g.ca_file);
    let cas = config
        .origin
        .iter_mut()
        .map(|o| &mut o.ca_file)
        .chain(group_cas);
    for ca in cas.flatten() {
        if ca.is_relative() && !ca.as_os_str().is_empty() {
            *ca = base.join(&*ca);
        }
    }
    if let Some(token) = &mut config.admin.token_file {
        if token.is_relative() && !token.as_os_str().is_empty() {
            *token = base.join(&*token);
        }
    }
    if let Some(token) = &mut config.cluster.token_file {
        if token.is_relative() && !token.as_os_str().is_empty() {
            *token = base.join(&*token);
        }
    }
    let control = &mut config.control;
    for file in [&mut control.token_file, &mut control.creds_file]
        .into_iter()
        .flatten()
    {
        if file.is_relative() && !file.as_os_str().is_empty() {
            *file = base.join(&*file);
        }
    }
    let geo = &mut config.geo;
    for path in geo.mmdb.iter_mut().chain(std::iter::once(&mut geo.pops)) {
        if path.is_relative() && !path.as_os_str().is_empty() {
            *path = base.join(&*path);
        }
    }
}

/// Maps configuration paths such as `origin[1].weight` back to source lines.
pub(crate) struct Locator<'a> {
    file: &'a str,
    text: &'a str,
    root: Option<DeTable<'a>>,
}

impl<'a> Locator<'a> {
    /// For configurations that did not come from text (quick mode).
    pub(crate) fn none(file: &'a str) -> Locator<'a> {
        Locator {
            file,
            text: "",
            root: None,
        }
    }

    /// An error about the value at `path` (dotted keys, `[i]` for array
    /// elements). When the key is absent (a default is in effect) the line of
    /// the nearest enclosing table that is present is used, if any.
    pub(crate) fn error(&self, path: &str, message: String) -> ConfigError {
        let line = self.span_of(path).map(|s| self.line_of(s.start));
        ConfigError::new(self.file, line, message)
    }

    /// Whether the document sets top-level `key` at all.
    pub(crate) fn has_top_level(&self, key: &str) -> bool {
        self.root
            .as_ref()
            .is_some_and(|root| root.iter().any(|(k, _)| k.get_ref() == key))
    }

    fn at_span(&self, span: Range<usize>, message: String) -> ConfigError {
        ConfigError::new(self.file, Some(self.line_of(span.start)), message)
    }

    fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let message = error.message().trim_end().to_string();
        let Some(span) = error.span() else {
            return ConfigError::new(self.file, None, message);
        };
        let message = match self
            .path_at(span.start)
            .map(|p| context_path(&p, &message).to_string())
        {
            Some(path) if !path.is_empty() => format!("{path}: {message}"),
            _ => message,
        };
        self.at_span(span, message)
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text
            .as_bytes()
            .iter()
            .take(offset)
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let root = self.root.as_ref()?;
        let mut table = root;
        let mut found = None;
        for segment in path.split('.') {
            let (name, index) = split_index(segment);
            let Some((key, mut value)) = table.iter().find(|(k, _)| k.get_ref() == name) else {
                break;
            };
            found = Some(key.span());
            if let Some(i) = index {
                let Some(element) = value.get_ref().as_array().and_then(|a| a.get(i)) else {
                    break;
                };
                found = Some(element.span());
                value = element;
            }
            match value.get_ref().as_table() {
                Some(t) => table = t,
                None => break,
            }
        }
        found
    }

    /// The dotted path of the innermost value whose source covers `offset`,
    /// to name the key a deserialization error is about.
    fn path_at(&self, offset: usize) -> Option<String> {
        find_path(self.root.as_ref()?, offset, 0)
    }
}

/// Depth-first, because a `[table]`'s own span covers only its header, not
/// the keys below it. Depth is bounded against pathological nesting.
fn find_path(table: &DeTable<'_>, offset: usize, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    for (key, value) in table {
        let name = key.get_ref().to_string();
        if let Some(inner) = find_in_value(value, offset, depth) {
            return Some(format!("{name}{inner}"));
        }
        if covers(key.span(), offset) || covers(value.span(), offset) {
            return Some(name);
        }
    }
    None
}

/// Returns the path suffix (".key" or "[i]...") below `value` covering `offset`.
fn find_in_value(value: &Spanned<DeValue<'_>>, offset: usize, depth: usize) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(t) => find_path(t, offset, depth + 1).map(|p| format!(".{p}")),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            find_in_value(item, offset, depth + 1)
                .or_else(|| covers(item.span(), offset).then(String::new))
                .map(|inner| format!("[{i}]{inner}"))
        }),
        _ => None,
    }
}

fn covers(span: Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// The path to prefix an error with: the key itself, or its parent when the
/// message already names the key (as "unknown field `x`" does).
fn context_path<'p>(path: &'p str, message: &str) -> &'p str {
    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    if message.contains(&format!("`{leaf}`")) {
        parent
    } else {
        path
    }
}

fn split_index(segment: &str) -> (&str, Option<usize>) {
    if let Some((name, rest)) = segment.split_once('[') {
        if let Some(index) = rest.strip_suffix(']').and_then(|i| i.parse().ok()) {
            return (name, Some(index));
        }
    }
    (segment, None)
}
