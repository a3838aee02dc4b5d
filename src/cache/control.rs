//! Parsing of cache directive fields: `Cache-Control` (RFC 9111 5.2), `Surrogate-Control`
//! (same grammar, Edge Architecture) and the targeted `CDN-Cache-Control` (RFC 9213), which is a
//! Structured Field Dictionary (RFC 8941) and therefore parsed strictly.
//!
//! Parsing never fails and never panics: malformed members are ignored, except that a malformed
//! *freshness* directive marks the whole set as `invalid_freshness` (RFC 9111 4.2.1 encourages
//! treating such a response as stale rather than guessing).

use http::HeaderValue;

/// RFC 9111 1.2.2: a delta-seconds value that does not fit is treated as 2^31 ("infinity").
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// Bound on the number of field names kept from `private="..."` / `no-cache="..."`, so that an
/// origin cannot make us allocate without limit.
const MAX_LISTED_FIELDS: usize = 64;

/// Bound on the combined length of all field lines we look at (bytes).
const MAX_INPUT: usize = 16 * 1024;

/// Directives of one family of header (Cache-Control, or CDN-Cache-Control, or Surrogate-Control).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    /// Unqualified `no-cache`.
    pub no_cache: bool,
    /// Field names (lowercase) from qualified `no-cache="a, b"`.
    pub no_cache_fields: Vec<String>,
    /// Unqualified `private`.
    pub private: bool,
    /// Field names (lowercase) from qualified `private="a, b"`.
    pub private_fields: Vec<String>,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub no_transform: bool,
    pub immutable: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    // request directives
    pub only_if_cached: bool,
    /// `u64::MAX` when the directive has no value (any staleness accepted).
    pub max_stale: Option<u64>,
    pub min_fresh: Option<u64>,
    /// a freshness directive was invalid/duplicated-conflicting: RFC 9111 4.2.1 encourages treating as stale
    pub invalid_freshness: bool,
}

/// A directive value as written: bare, token or quoted-string (already unescaped).
enum Value {
    None,
    Token(String),
    Quoted(String),
}

impl CacheControl {
    /// Lenient RFC 9111 5.2 parse of all field lines of one header (`Cache-Control` or
    /// `Surrogate-Control`). Names are case-insensitive; values may be tokens or quoted strings.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut cc = CacheControl::default();
        let mut budget = MAX_INPUT;
        for value in values {
            let bytes = value.as_bytes();
            let Some(rest) = budget.checked_sub(bytes.len()) else {
                // Oversized directive lists are not something a sane origin sends; be
                // conservative about freshness rather than silently dropping directives.
                cc.invalid_freshness = true;
                break;
            };
            budget = rest;
            for member in split_members(bytes) {
                cc.apply_member(member);
            }
        }
        cc
    }

    /// Strict RFC 9213 parse of `CDN-Cache-Control` (an RFC 8941 Dictionary). Returns `None` when
    /// the field is absent, is not a valid Structured Field, or a known directive has a value of
    /// the wrong type: RFC 9213 2.1 has such a field ignored, so the caller falls back to the next
    /// field in precedence order.
    ///
    /// Ambiguity note: RFC 8941 keys are lowercase-only, but cache-tests checks
    /// (`cdn-max-age-case-insensitive`) reward accepting `MaX-aGe`; uppercase keys are lowercased
    /// here instead of rejecting the whole field.
    pub fn parse_targeted<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Option<Self> {
        let mut joined: Vec<u8> = Vec::new();
        let mut any = false;
        for value in values {
            if any {
                joined.extend_from_slice(b", ");
            }
            any = true;
            joined.extend_from_slice(value.as_bytes());
            if joined.len() > MAX_INPUT {
                return None;
            }
        }
        if !any {
            return None;
        }
        let members = sf::parse_dictionary(&joined)?;
        let mut cc = CacheControl::default();
        for (key, item) in members {
            cc.apply_sf(&key, item)?;
        }
        Some(cc)
    }

    /// True when no directive this module understands was present.
    pub fn is_empty(&self) -> bool {
        *self == CacheControl::default()
    }

    /// Any explicit freshness lifetime directive (valid or not) for a shared cache.
    pub fn has_explicit_lifetime(&self) -> bool {
        self.max_age.is_some() || self.s_maxage.is_some() || self.invalid_freshness
    }

    fn apply_member(&mut self, member: &[u8]) {
        let Some((name, value)) = parse_member(member) else {
            // A malformed member that looks like a freshness directive (e.g. `max-age =60`)
            // must not be ignored silently into a longer lifetime; see cache-tests
            // freshness-max-age-space-before-equals.
            if looks_like_freshness(member) {
                self.invalid_freshness = true;
            }
            // Likewise a garbled restrictive directive (`no-store junk`) is honoured in its
            // strictest, unqualified form rather than dropped.
            match leading_name(member).as_str() {
                "no-store" => self.no_store = true,
                "private" => self.private = true,
                "no-cache" => self.no_cache = true,
                _ => {}
            }
            return;
        };
        match name.as_str() {
            "max-age" => set_freshness(&mut self.max_age, &value, &mut self.invalid_freshness),
            "s-maxage" => set_freshness(&mut self.s_maxage, &value, &mut self.invalid_freshness),
            "stale-while-revalidate" => set_first(&mut self.stale_while_revalidate, &value),
            "stale-if-error" => set_first(&mut self.stale_if_error, &value),
            "min-fresh" => set_first(&mut self.min_fresh, &value),
            "max-stale" => match value {
                Value::None => self.max_stale = Some(u64::MAX),
                _ => set_first(&mut self.max_stale, &value),
            },
            "no-cache" => match value {
                Value::Quoted(list) | Value::Token(list) if !list.trim().is_empty() => {
                    push_fields(&mut self.no_cache_fields, &list)
                }
                // `no-cache=""` lists nothing; treat it as the unqualified (stricter) form.
                _ => self.no_cache = true,
            },
            "private" => match value {
                Value::Quoted(list) | Value::Token(list) if !list.trim().is_empty() => {
                    push_fields(&mut self.private_fields, &list)
                }
                _ => self.private = true,
            },
            // Flags: a stray argument does not make a restrictive directive go away.
            "no-store" => self.no_store = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "must-understand" => self.must_understand = true,
            "no-transform" => self.no_transform = true,
            "immutable" => self.immutable = true,
            "only-if-cached" => self.only_if_cached = true,
            _ => {}
        }
    }

    /// Maps one RFC 8941 dictionary member; `None` = wrong type, ignore the whole field.
    fn apply_sf(&mut self, key: &str, item: sf::Item) -> Option<()> {
        use sf::Item;
        let seconds = |item: &Item| match item {
            Item::Int(n) if *n >= 0 => Some((*n as u64).min(DELTA_SECONDS_MAX)),
            _ => None,
        };
        let flag = |item: &Item| match item {
            Item::Bool(b) => Some(*b),
            _ => None,
        };
        match key {
            "max-age" => self.max_age = self.max_age.or(Some(seconds(&item)?)),
            "s-maxage" => self.s_maxage = self.s_maxage.or(Some(seconds(&item)?)),
            "stale-while-revalidate" => {
                self.stale_while_revalidate = self.stale_while_revalidate.or(Some(seconds(&item)?))
            }
            "stale-if-error" => self.stale_if_error = self.stale_if_error.or(Some(seconds(&item)?)),
            "no-cache" | "private" => {
                let (unqualified, fields) = match key {
                    "no-cache" => (&mut self.no_cache, &mut self.no_cache_fields),
                    _ => (&mut self.private, &mut self.private_fields),
                };
                match item {
                    Item::Bool(b) => *unqualified |= b,
                    Item::Str(s) => push_fields(fields, &s),
                    Item::List(list) => {
                        for s in list {
                            push_fields(fields, &s);
                        }
                    }
                    _ => return None,
                }
            }
            "no-store" => self.no_store |= flag(&item)?,
            "public" => self.public |= flag(&item)?,
            "must-revalidate" => self.must_revalidate |= flag(&item)?,
            "proxy-revalidate" => self.proxy_revalidate |= flag(&item)?,
            "must-understand" => self.must_understand |= flag(&item)?,
            "no-transform" => self.no_transform |= flag(&item)?,
            "immutable" => self.immutable |= flag(&item)?,
            _ => {}
        }
        Some(())
    }
}

/// Splits a field line on commas that are not inside a quoted-string.
fn split_members(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == b',' {
            out.push(bytes.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    out.push(bytes.get(start..).unwrap_or_default());
    out
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9111 5.2: `cache-directive = token [ "=" ( token / quoted-string ) ]`, no whitespace
/// around "=". `None` for anything else (including empty list elements).
fn parse_member(member: &[u8]) -> Option<(String, Value)> {
    let member = trim_ows(member);
    let name_len = member.iter().take_while(|&&b| is_tchar(b)).count();
    if name_len == 0 {
        return None;
    }
    let name = String::from_utf8_lossy(member.get(..name_len)?).to_ascii_lowercase();
    let rest = member.get(name_len..)?;
    let value = match rest {
        [] => Value::None,
        [b'=', b'"', quoted @ ..] => Value::Quoted(unquote(quoted)?),
        [b'=', token @ ..] if !token.is_empty() && token.iter().all(|&b| is_tchar(b)) => {
            Value::Token(String::from_utf8_lossy(token).into_owned())
        }
        _ => return None,
    };
    Some((name, value))
}

/// Body of a quoted-string after the opening quote; must end exactly at the closing quote.
fn unquote(s: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    let mut iter = s.iter();
    while let Some(&b) = iter.next() {
        match b {
            b'\\' => out.push(*iter.next()?),
            b'"' => {
                return iter
                    .as_slice()
                    .is_empty()
                    .then(|| String::from_utf8_lossy(&out).into_owned())
            }
            _ => out.push(b),
        }
    }
    None
}

fn leading_name(member: &[u8]) -> String {
    let member = trim_ows(member);
    let len = member.iter().take_while(|&&b| is_tchar(b)).count();
    String::from_utf8_lossy(member.get(..len).unwrap_or_default()).to_ascii_lowercase()
}

fn looks_like_freshness(member: &[u8]) -> bool {
    let lower = trim_ows(member).to_ascii_lowercase();
    lower.starts_with(b"max-age") || lower.starts_with(b"s-maxage")
}

/// RFC 9111 1.2.2 delta-seconds: 1*DIGIT, clamped at 2^31. Anything else (sign, decimal point,
/// letters, empty) is invalid.
pub fn parse_delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        n = n
            .saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(DELTA_SECONDS_MAX);
    }
    Some(n)
}

fn value_seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Token(s) | Value::Quoted(s) => parse_delta_seconds(s),
        Value::None => None,
    }
}

/// RFC 9111 4.2.1: with duplicate freshness directives a cache "should" use the first or treat the
/// response as stale. Identical duplicates are harmless; conflicting or invalid ones make the
/// response stale (cache-tests only has `check`-kind tests for this, with mixed expectations).
fn set_freshness(slot: &mut Option<u64>, value: &Value, invalid: &mut bool) {
    match (value_seconds(value), *slot) {
        (None, _) => *invalid = true,
        (Some(n), None) => *slot = Some(n),
        (Some(n), Some(prev)) if n != prev => *invalid = true,
        _ => {}
    }
}

/// Non-freshness delta directives: first valid occurrence wins, invalid ones are ignored.
fn set_first(slot: &mut Option<u64>, value: &Value) {
    if slot.is_none() {
        *slot = value_seconds(value);
    }
}

fn push_fields(fields: &mut Vec<String>, list: &str) {
    for name in list.split(',') {
        let name = name.trim_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_tchar) || fields.len() >= MAX_LISTED_FIELDS {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if !fields.contains(&name) {
            fields.push(name);
        }
    }
}

/// Minimal RFC 8941 Dictionary parser, enough to validate and read `CDN-Cache-Control`.
mod sf {
    /// The bare item types RFC 9213 directives can carry; other valid types are `Other`.
    pub enum Item {
        Bool(bool),
        Int(i64),
        Str(String),
        /// Inner list of strings/tokens (field-name lists).
        List(Vec<String>),
        Other,
    }

    struct Parser<'a> {
        s: &'a [u8],
        pos: usize,
    }

    /// `None` on any syntax error (RFC 8941 4.2: fail parsing, ignore the field).
    pub fn parse_dictionary(input: &[u8]) -> Option<Vec<(String, Item)>> {
        let mut p = Parser { s: input, pos: 0 };
        p.skip_sp();
        let mut out = Vec::new();
        if p.at_end() {
            return Some(out);
        }
        loop {
            let key = p.key()?;
            let item = if p.eat(b'=') {
                if p.peek() == Some(b'(') {
                    p.inner_list()?
                } else {
                    p.bare_item()?
                }
            } else {
                Item::Bool(true)
            };
            p.params()?;
            // RFC 8941 4.2.2: later duplicate keys overwrite earlier ones.
            out.retain(|(k, _): &(String, Item)| *k != key);
            out.push((key, item));
            p.skip_ows();
            if p.at_end() {
                return Some(out);
            }
            if !p.eat(b',') {
                return None;
            }
            p.skip_ows();
            if p.at_end() {
                return None; // trailing comma
            }
        }
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.pos).copied()
        }
        fn at_end(&self) -> bool {
            self.pos >= self.s.len()
        }
        fn eat(&mut self, b: u8) -> bool {
            let hit = self.peek() == Some(b);
            if hit {
                self.pos += 1;
            }
            hit
        }
        fn skip_sp(&mut self) {
            while self.eat(b' ') {}
        }
        fn skip_ows(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
        }
        fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &[u8] {
            let start = self.pos;
            while self.peek().is_some_and(&f) {
                self.pos += 1;
            }
            self.s.get(start..self.pos).unwrap_or_default()
        }

        fn key(&mut self) -> Option<String> {
            let first = self.peek()?;
            if !(first.is_ascii_alphabetic() || first == b'*') {
                return None;
            }
            let key = self.take_while(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'*')
            });
            Some(String::from_utf8_lossy(key).to_ascii_lowercase())
        }

        fn params(&mut self) -> Option<()> {
            while self.eat(b';') {
                self.skip_sp();
                self.key()?;
                if self.eat(b'=') {
                    self.bare_item()?;
                }
            }
            Some(())
        }

        fn inner_list(&mut self) -> Option<Item> {
            self.eat(b'(');
            let mut names = Vec::new();
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    self.params()?;
                    return Some(Item::List(names));
                }
                match self.bare_item()? {
                    Item::Str(s) => names.push(s),
                    _ => return None,
                }
                self.params()?;
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return None;
                }
            }
        }

        fn bare_item(&mut self) -> Option<Item> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(),
                b'"' => self.string().map(Item::Str),
                b'?' => {
                    self.pos += 1;
                    let b = match self.peek()? {
                        b'0' => false,
                        b'1' => true,
                        _ => return None,
                    };
                    self.pos += 1;
                    Some(Item::Bool(b))
                }
                b':' => {
                    self.pos += 1;
                    self.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
                    self.eat(b':').then_some(Item::Other)
                }
                b if b.is_ascii_alphabetic() || b == b'*' => {
                    let tok = self.take_while(|b| super::is_tchar(b) || b == b':' || b == b'/');
                    // Tokens stand for field names in lists; keep them as strings.
                    Some(Item::Str(String::from_utf8_lossy(tok).into_owned()))
                }
                _ => None,
            }
        }

        fn number(&mut self) -> Option<Item> {
            let negative = self.eat(b'-');
            let int_part = self.take_while(|b| b.is_ascii_digit()).to_vec();
            if int_part.is_empty() {
                return None;
            }
            if self.eat(b'.') {
                let frac = self.take_while(|b| b.is_ascii_digit());
                let ok = int_part.len() <= 12 && (1..=3).contains(&frac.len());
                return ok.then_some(Item::Other);
            }
            if int_part.len() > 15 {
                return None;
            }
            let text = std::str::from_utf8(&int_part).ok()?;
            let n: i64 = text.parse().ok()?;
            Some(Item::Int(if negative { -n } else { n }))
        }

        fn string(&mut self) -> Option<String> {
            self.eat(b'"');
            let mut out = String::new();
            loop {
                match self.peek()? {
                    b'\\' => {
                        self.pos += 1;
                        let c = self.peek()?;
                        if c != b'"' && c != b'\\' {
                            return None;
                        }
                        out.push(char::from(c));
                    }
                    b'"' => {
                        self.pos += 1;
                        return Some(out);
                    }
                    c if (0x20..0x7f).contains(&c) => out.push(char::from(c)),
                    _ => return None,
                }
                self.pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(lines: &[&str]) -> CacheControl {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_str(l).unwrap())
            .collect();
        CacheControl::parse(values.iter())
    }

    fn cdn(lines: &[&str]) -> Option<CacheControl> {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_str(l).unwrap())
            .collect();
        CacheControl::parse_targeted(values.iter())
    }

    #[test]
    fn basic_directives() {
        let c = cc(&["public, max-age=60, s-maxage=30, must-revalidate"]);
        assert_eq!(c.max_age, Some(60));
        assert_eq!(c.s_maxage, Some(30));
        assert!(c.public && c.must_revalidate);
        assert!(!c.invalid_freshness);
    }

    #[test]
    fn empty_and_garbage() {
        assert!(cc(&[]).is_empty());
        assert!(cc(&[""]).is_empty());
        assert!(cc(&[",,, ,"]).is_empty());
        assert!(cc(&["foobar, &&&, =5"]).is_empty());
    }

    #[test]
    fn case_insensitive_names() {
        let c = cc(&["MaX-AgE=10, No-StOrE, No-CaChE"]);
        assert_eq!(c.max_age, Some(10));
        assert!(c.no_store && c.no_cache);
    }

    #[test]
    fn multiple_lines_combine() {
        let c = cc(&["max-age=10", "no-transform", "private"]);
        assert_eq!(c.max_age, Some(10));
        assert!(c.no_transform && c.private);
    }

    #[test]
    fn quoted_values() {
        assert_eq!(cc(&["max-age=\"3600\""]).max_age, Some(3600));
        let c = cc(&["max-age='3600'"]);
        assert!(c.invalid_freshness);
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let c = cc(&["extension=\"max-age=3600\", max-age=1"]);
        assert_eq!(c.max_age, Some(1));
        assert!(!c.invalid_freshness);
        let c = cc(&["max-age=1, extension=\"max-age=3600, s-maxage=9\""]);
        assert_eq!(c.max_age, Some(1));
        assert_eq!(c.s_maxage, None);
    }

    #[test]
    fn whitespace_around_equals_is_invalid() {
        assert!(cc(&["max-age =100"]).invalid_freshness);
        assert!(cc(&["max-age= 100"]).invalid_freshness);
        assert_eq!(cc(&["  max-age=100  ,\tpublic "]).max_age, Some(100));
    }

    #[test]
    fn invalid_numbers() {
        for v in [
            "max-age=a100",
            "max-age=100a",
            "max-age=-100",
            "max-age=3600.0",
            "max-age=",
            "max-age",
            "s-maxage=+5",
        ] {
            assert!(cc(&[v]).invalid_freshness, "{v}");
        }
        assert_eq!(cc(&["max-age=003600"]).max_age, Some(3600));
    }

    #[test]
    fn overflow_clamps() {
        assert_eq!(
            cc(&["max-age=99999999999999999999999999"]).max_age,
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(cc(&["max-age=2147483648"]).max_age, Some(DELTA_SECONDS_MAX));
        assert_eq!(cc(&["max-age=2147483647"]).max_age, Some(2147483647));
    }

    #[test]
    fn duplicates() {
        assert!(cc(&["max-age=1800, max-age=1"]).invalid_freshness);
        assert!(cc(&["max-age=1", "max-age=1800"]).invalid_freshness);
        let c = cc(&["max-age=60, max-age=60"]);
        assert!(!c.invalid_freshness);
        assert_eq!(c.max_age, Some(60));
        assert_eq!(
            cc(&["stale-if-error=5, stale-if-error=9"]).stale_if_error,
            Some(5)
        );
    }

    #[test]
    fn qualified_private_and_no_cache() {
        let c = cc(&["private=\"Set-Cookie, X-Foo\", no-cache=\"a\""]);
        assert!(!c.private && !c.no_cache);
        assert_eq!(c.private_fields, vec!["set-cookie", "x-foo"]);
        assert_eq!(c.no_cache_fields, vec!["a"]);
        let c = cc(&["no-cache=\"a, b\""]);
        assert_eq!(c.no_cache_fields, vec!["a", "b"]);
        // empty qualifier degrades to the unqualified (stricter) form
        assert!(cc(&["no-cache=\"\""]).no_cache);
        assert!(cc(&["private"]).private);
        // token form is tolerated
        assert_eq!(
            cc(&["private=set-cookie"]).private_fields,
            vec!["set-cookie"]
        );
    }

    #[test]
    fn listed_fields_are_bounded() {
        let list: Vec<String> = (0..500).map(|i| format!("h{i}")).collect();
        let line = format!("no-cache=\"{}\"", list.join(","));
        assert_eq!(cc(&[&line]).no_cache_fields.len(), MAX_LISTED_FIELDS);
    }

    #[test]
    fn request_directives() {
        let c = cc(&["max-stale, min-fresh=5, only-if-cached, no-cache"]);
        assert_eq!(c.max_stale, Some(u64::MAX));
        assert_eq!(c.min_fresh, Some(5));
        assert!(c.only_if_cached && c.no_cache);
        assert_eq!(cc(&["max-stale=100"]).max_stale, Some(100));
        assert_eq!(cc(&["max-stale=abc"]).max_stale, None);
    }

    #[test]
    fn stale_extensions() {
        let c = cc(&["max-age=1, stale-while-revalidate=30, stale-if-error=\"60\""]);
        assert_eq!(c.stale_while_revalidate, Some(30));
        assert_eq!(c.stale_if_error, Some(60));
        assert_eq!(
            cc(&["stale-while-revalidate=x"]).stale_while_revalidate,
            None
        );
    }

    #[test]
    fn unterminated_quote_and_escapes() {
        let c = cc(&["no-cache=\"a, max-age=5"]);
        assert_eq!(c.max_age, None);
        assert!(c.no_cache_fields.is_empty());
        let c = cc(&[r#"ext="a\"b,c", max-age=7"#]);
        assert_eq!(c.max_age, Some(7));
        let c = cc(&["no-cache=\"a\"junk, max-age=7"]);
        assert_eq!(c.max_age, Some(7));
        assert!(c.no_cache_fields.is_empty());
    }

    #[test]
    fn garbled_restrictive_directives_are_honoured() {
        assert!(cc(&["no-store junk"]).no_store);
        assert!(cc(&["private \"x\""]).private);
        assert!(cc(&["no-cache=\"a\"b"]).no_cache);
        assert!(!cc(&["public junk"]).public);
    }

    #[test]
    fn non_utf8_never_panics() {
        let v =
            HeaderValue::from_bytes(b"max-age=5, \xff\xfe=\"\xc3\x28\", private=\"\xff\"").unwrap();
        let c = CacheControl::parse([&v]);
        assert_eq!(c.max_age, Some(5));
        let _ = CacheControl::parse_targeted([&v]);
    }

    #[test]
    fn oversized_input_is_conservative() {
        let big = "x".repeat(MAX_INPUT + 1);
        let c = cc(&[&big]);
        assert!(c.invalid_freshness);
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_delta_seconds("0"), Some(0));
        assert_eq!(parse_delta_seconds(""), None);
        assert_eq!(parse_delta_seconds("-1"), None);
        assert_eq!(parse_delta_seconds("1 "), None);
        assert_eq!(
            parse_delta_seconds("184467440737095516160"),
            Some(DELTA_SECONDS_MAX)
        );
    }

    #[test]
    fn targeted_valid() {
        let c = cdn(&["max-age=3600"]).unwrap();
        assert_eq!(c.max_age, Some(3600));
        let c = cdn(&["foobar, max-age=3600"]).unwrap();
        assert_eq!(c.max_age, Some(3600));
        let c = cdn(&["no-store"]).unwrap();
        assert!(c.no_store);
        let c = cdn(&["max-age=99999999999"]).unwrap();
        assert_eq!(c.max_age, Some(DELTA_SECONDS_MAX));
        let c = cdn(&["MaX-aGe=3600"]).unwrap();
        assert_eq!(c.max_age, Some(3600));
        let c = cdn(&["private=(\"set-cookie\" \"x-a\"), no-cache=?0"]).unwrap();
        assert_eq!(c.private_fields, vec!["set-cookie", "x-a"]);
        assert!(!c.no_cache);
        let c = cdn(&["max-age=60", "stale-while-revalidate=30;x=1"]).unwrap();
        assert_eq!(c.stale_while_revalidate, Some(30));
        assert!(cdn(&["foo"]).unwrap().is_empty());
    }

    #[test]
    fn targeted_invalid_is_ignored() {
        assert!(cdn(&[]).is_none());
        assert!(cdn(&["max-age=10000, &&&&&"]).is_none());
        assert!(cdn(&["max-age=\"10000\""]).is_none());
        assert!(cdn(&["max-age =100"]).is_none());
        assert!(cdn(&["max-age= 100"]).is_none());
        assert!(cdn(&["max-age=-1"]).is_none());
        assert!(cdn(&["max-age=1.5"]).is_none());
        assert!(cdn(&["max-age=1,"]).is_none());
        assert!(cdn(&["no-store=1"]).is_none());
        assert!(cdn(&["max-age=1234567890123456"]).is_none());
    }
}
