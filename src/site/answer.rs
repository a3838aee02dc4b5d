//! What a site answers itself, without an origin: a `redirect`, a fixed `respond`
//! response, and the `allow` / `deny` client networks.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::template::{Template, Var, Vars};
use crate::body::ProxyBody;
use crate::config::{Cidr, RedirectConfig, RespondConfig, SiteConfig};

/// How long a client or a downstream cache may keep a permanent redirect: browsers
/// keep a 301 without freshness forever, so a mistaken one would never heal. A day
/// saves the round trips and still lets a corrected config take effect. `private`
/// when the Location names the client.
const PERMANENT_REDIRECT_CACHE: &str = "max-age=86400";
const PERMANENT_REDIRECT_CACHE_PRIVATE: &str = "private, max-age=86400";

/// A response the site gives instead of asking an origin.
#[derive(Debug, Clone)]
pub struct Answer {
    status: StatusCode,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Redirect {
        location: Location,
        cache_control: HeaderValue,
        body: Bytes,
    },
    Respond {
        /// `None` for a status that has no content (204, 205, 304).
        content: Option<Content>,
    },
}

#[derive(Debug, Clone)]
enum Location {
    Fixed(HeaderValue),
    Template(Template),
}

#[derive(Debug, Clone)]
struct Content {
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl Answer {
    /// The site's `redirect` or `respond`, or `None` when it has neither.
    pub fn compile(site: &SiteConfig) -> Result<Option<Answer>, String> {
        match (&site.redirect, &site.respond) {
            (Some(_), Some(_)) => {
                Err("a site answers with either redirect or respond, not both".to_owned())
            }
            (Some(r), None) => redirect(r).map(Some),
            (None, Some(r)) => respond(r).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The status every response of this answer has.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response for one request. The body is shared, not copied; the caller drops
    /// it for HEAD as for any other response.
    pub fn response(&self, vars: &Vars) -> Response<ProxyBody> {
        let mut resp = Response::new(ProxyBody::empty());
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        match &self.kind {
            Kind::Redirect {
                location,
                cache_control,
                body,
            } => {
                let location = match location {
                    Location::Fixed(v) => v.clone(),
                    Location::Template(t) => t.header_value(vars),
                };
                h.insert(header::LOCATION, location);
                h.insert(header::CACHE_CONTROL, cache_control.clone());
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                *resp.body_mut() = ProxyBody::full(body.clone());
            }
            Kind::Respond { content: None } => {}
            Kind::Respond {
                content: Some(content),
            } => {
                if let Some(ct) = &content.content_type {
                    h.insert(header::CONTENT_TYPE, ct.clone());
                }
                h.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(content.body.len()),
                );
                *resp.body_mut() = ProxyBody::full(content.body.clone());
            }
        }
        resp
    }
}

fn redirect(cfg: &RedirectConfig) -> Result<Answer, String> {
    let status = match cfg.status {
        301 | 302 | 303 | 307 | 308 => StatusCode::from_u16(cfg.status)
            .map_err(|_| format!("redirect.status {} is not a status code", cfg.status))?,
        other => {
            return Err(format!(
                "redirect.status must be 301, 302, 303, 307 or 308, not {other}"
            ))
        }
    };
    if cfg.location.is_empty() {
        return Err("redirect.location is empty".to_owned());
    }
    let template =
        Template::parse(&cfg.location, false).map_err(|e| format!("redirect.location: {e}"))?;
    let per_client = template.uses(Var::ClientIp);
    let location = match template.as_literal() {
        Some(fixed) => Location::Fixed(
            HeaderValue::from_str(fixed)
                .map_err(|_| format!("redirect.location {fixed:?} is not a valid header value"))?,
        ),
        None => Location::Template(template),
    };
    // Temporary redirects are kept by no one, permanent ones for a while.
    let cache_control = match (status.as_u16(), per_client) {
        (301 | 308, false) => HeaderValue::from_static(PERMANENT_REDIRECT_CACHE),
        (301 | 308, true) => HeaderValue::from_static(PERMANENT_REDIRECT_CACHE_PRIVATE),
        _ => HeaderValue::from_static("no-store"),
    };
    let body = Bytes::from(format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Redirect")
    ));
    Ok(Answer {
        status,
        kind: Kind::Redirect {
            location,
            cache_control,
            body,
        },
    })
}

fn respond(cfg: &RespondConfig) -> Result<Answer, String> {
    let status = StatusCode::from_u16(cfg.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| {
            format!(
                "respond.status must be between 200 and 599, not {}",
                cfg.status
            )
        })?;
    // RFC 9110 §15.3.5, §15.3.6, §15.4.5: these carry no content.
    if matches!(status.as_u16(), 204 | 205 | 304) {
        if !cfg.body.is_empty() {
            return Err(format!(
                "respond.body must be empty for status {}",
                status.as_u16()
            ));
        }
        return Ok(Answer {
            status,
            kind: Kind::Respond { content: None },
        });
    }
    let content_type = if cfg.content_type.is_empty() {
        None
    } else {
        Some(HeaderValue::from_str(&cfg.content_type).map_err(|_| {
            format!(
                "respond.content_type {:?} is not a valid header value",
                cfg.content_type
            )
        })?)
    };
    Ok(Answer {
        status,
        kind: Kind::Respond {
            content: Some(Content {
                content_type,
                body: Bytes::from(cfg.body.clone()),
            }),
        },
    })
}

/// A site's `allow` and `deny` client networks. A client is let in when `allow` is
/// empty or lists it, and `deny` does not list it: deny wins, and the order of the
/// entries does not matter (unlike nginx's first match). An IPv4 client on a
/// dual-stack socket (`::ffff:a.b.c.d`) is matched as the IPv4 address, by IPv4 blocks
/// and by blocks written in that mapped form.
#[derive(Debug, Clone, Default)]
pub struct Access {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl Access {
    pub fn compile(allow: &[String], deny: &[String]) -> Result<Access, String> {
        let parse = |list: &str, items: &[String]| -> Result<Vec<Cidr>, String> {
            items
                .iter()
                .map(|s| {
                    s.parse::<Cidr>()
                        .map(as_v4_when_mapped)
                        .map_err(|e| format!("{list}: {e}"))
                })
                .collect()
        };
        Ok(Access {
            allow: parse("allow", allow)?,
            deny: parse("deny", deny)?,
        })
    }

    /// Lets everyone in: the request path skips `permits`.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip)))
            && !self.deny.iter().any(|c| c.contains(ip))
    }
}

/// `::ffff:10.0.0.0/104` → `10.0.0.0/8`: clients in that range are matched as IPv4,
/// so the block must be too, or it would never match anyone.
fn as_v4_when_mapped(c: Cidr) -> Cidr {
    match c.network() {
        IpAddr::V6(v6) if c.prefix_len() >= 96 => v6
            .to_ipv4_mapped()
            .and_then(|v4| Cidr::new(IpAddr::V4(v4), c.prefix_len() - 96))
            .unwrap_or(c),
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn vars<'a>(path: &'a str, query: &'a str) -> Vars<'a> {
        Vars {
            client_ip: "192.0.2.1".parse().unwrap(),
            host: "example.com:80",
            path,
            query,
            scheme: "http",
            pop: "p",
            node: "n",
            site: "s",
            cache: "",
        }
    }

    fn site_redirect(status: u16, location: &str) -> SiteConfig {
        SiteConfig {
            redirect: Some(RedirectConfig {
                status,
                location: location.to_owned(),
            }),
            ..Default::default()
        }
    }

    fn site_respond(status: u16, content_type: &str, body: &str) -> SiteConfig {
        SiteConfig {
            respond: Some(RespondConfig {
                status,
                content_type: content_type.to_owned(),
                body: body.to_owned(),
            }),
            ..Default::default()
        }
    }

    fn header<'a>(r: &'a Response<ProxyBody>, name: &str) -> Option<&'a str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    async fn body(r: Response<ProxyBody>) -> Bytes {
        tokio::time::timeout(std::time::Duration::from_secs(5), r.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes()
    }

    #[tokio::test]
    async fn permanent_redirect() {
        let a = Answer::compile(&site_redirect(301, "https://{host}{uri}"))
            .unwrap()
            .unwrap();
        assert_eq!(a.status(), StatusCode::MOVED_PERMANENTLY);
        let r = a.response(&vars("/a b\r\n", "x=1"));
        assert_eq!(r.status(), 301);
        assert_eq!(
            header(&r, "location"),
            Some("https://example.com/a%20b%0D%0A?x=1")
        );
        assert_eq!(header(&r, "cache-control"), Some("max-age=86400"));
        assert_eq!(
            header(&r, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(header(&r, "content-length"), Some("22"));
        assert_eq!(body(r).await, "301 Moved Permanently\n");

        let a = Answer::compile(&site_redirect(308, "https://x/?ip={client_ip}"))
            .unwrap()
            .unwrap();
        let r = a.response(&vars("/", ""));
        assert_eq!(header(&r, "location"), Some("https://x/?ip=192.0.2.1"));
        assert_eq!(header(&r, "cache-control"), Some("private, max-age=86400"));
    }

    #[tokio::test]
    async fn temporary_redirects_are_not_stored() {
        for status in [302, 303, 307] {
            let a = Answer::compile(&site_redirect(status, "/maintenance"))
                .unwrap()
                .unwrap();
            let r = a.response(&vars("/", ""));
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(header(&r, "location"), Some("/maintenance"));
            assert_eq!(header(&r, "cache-control"), Some("no-store"));
            let len: usize = header(&r, "content-length").unwrap().parse().unwrap();
            assert_eq!(body(r).await.len(), len);
        }
    }

    #[test]
    fn bad_redirects() {
        let err = |s: SiteConfig| Answer::compile(&s).unwrap_err();
        let e = err(site_redirect(200, "/x"));
        assert_eq!(
            e,
            "redirect.status must be 301, 302, 303, 307 or 308, not 200"
        );
        assert_eq!(err(site_redirect(301, "")), "redirect.location is empty");
        let e = err(site_redirect(301, "https://{hots}/"));
        assert!(e.starts_with("redirect.location: "), "{e}");
        assert!(e.contains("unknown variable {hots}"), "{e}");
        assert!(err(site_redirect(301, "/{cache}")).contains("{cache}"));
        let mut both = site_redirect(301, "/x");
        both.respond = Some(RespondConfig::default());
        assert!(err(both).contains("not both"));
        assert!(Answer::compile(&SiteConfig::default()).unwrap().is_none());
    }

    #[tokio::test]
    async fn respond_shares_its_body() {
        let a = Answer::compile(&site_respond(503, "text/html", "<h1>down</h1>"))
            .unwrap()
            .unwrap();
        let r1 = a.response(&vars("/", ""));
        let r2 = a.response(&vars("/other", ""));
        assert_eq!(r1.status(), 503);
        assert_eq!(header(&r1, "content-type"), Some("text/html"));
        assert_eq!(header(&r1, "content-length"), Some("13"));
        assert!(r1.headers().get("cache-control").is_none());
        let (b1, b2) = (body(r1).await, body(r2).await);
        assert_eq!(b1, "<h1>down</h1>");
        assert_eq!(b1.as_ptr(), b2.as_ptr(), "the body is shared, not copied");

        let a = Answer::compile(&site_respond(200, "", "ok"))
            .unwrap()
            .unwrap();
        let r = a.response(&vars("/", ""));
        assert!(r.headers().get("content-type").is_none());
        assert_eq!(body(r).await, "ok");

        let a = Answer::compile(&site_respond(200, "text/plain", ""))
            .unwrap()
            .unwrap();
        let r = a.response(&vars("/", ""));
        assert_eq!(header(&r, "content-length"), Some("0"));
        assert!(body(r).await.is_empty());
    }

    #[tokio::test]
    async fn respond_without_content() {
        for status in [204, 205, 304] {
            let a = Answer::compile(&site_respond(status, "text/plain", ""))
                .unwrap()
                .unwrap();
            let r = a.response(&vars("/", ""));
            assert_eq!(r.status().as_u16(), status);
            assert!(r.headers().is_empty(), "{:?}", r.headers());
            assert!(body(r).await.is_empty());
            let e = Answer::compile(&site_respond(status, "", "x")).unwrap_err();
            assert_eq!(e, format!("respond.body must be empty for status {status}"));
        }
    }

    #[test]
    fn bad_responds() {
        for status in [0, 99, 100, 101, 199, 600, 999, 1000] {
            let e = Answer::compile(&site_respond(status, "", "")).unwrap_err();
            assert!(e.contains("between 200 and 599"), "{e}");
        }
        let e = Answer::compile(&site_respond(200, "text/html\r\nx: y", "")).unwrap_err();
        assert!(e.contains("respond.content_type"), "{e}");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn strings(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn access_allow_then_deny() {
        let open = Access::compile(&[], &[]).unwrap();
        assert!(open.is_open());
        assert!(open.permits(ip("203.0.113.9")) && open.permits(ip("::1")));

        let a = Access::compile(
            &strings(&["10.0.0.0/8", "2001:db8::/32"]),
            &strings(&["10.9.0.0/16", "2001:db8:bad::/48"]),
        )
        .unwrap();
        assert!(!a.is_open());
        assert!(a.permits(ip("10.1.2.3")));
        assert!(!a.permits(ip("10.9.2.3")), "deny wins over allow");
        assert!(!a.permits(ip("11.0.0.1")), "not allowed");
        assert!(a.permits(ip("2001:db8::1")));
        assert!(!a.permits(ip("2001:db8:bad::1")));
        assert!(!a.permits(ip("2001:db9::1")));
        // A v4 client on a dual-stack socket.
        assert!(a.permits(ip("::ffff:10.1.2.3")));
        assert!(!a.permits(ip("::ffff:10.9.2.3")));
        assert!(!a.permits(ip("::ffff:11.0.0.1")));

        // Deny only: everyone else is let in.
        let d = Access::compile(&[], &strings(&["192.0.2.7", "::1"])).unwrap();
        assert!(!d.permits(ip("192.0.2.7")));
        assert!(!d.permits(ip("::ffff:192.0.2.7")));
        assert!(d.permits(ip("192.0.2.8")));
        assert!(!d.permits(ip("::1")));
        assert!(d.permits(ip("::2")));
    }

    #[test]
    fn access_mapped_blocks_match_v4_clients() {
        let a = Access::compile(&[], &strings(&["::ffff:10.0.0.0/104", "::ffff:0:0/96"])).unwrap();
        assert!(!a.permits(ip("10.1.1.1")));
        assert!(!a.permits(ip("::ffff:10.1.1.1")));
        assert!(!a.permits(ip("8.8.8.8")), "::ffff:0:0/96 is all of IPv4");
        assert!(a.permits(ip("2001:db8::1")));
        // An IPv6 block does not cover IPv4 clients, nor an IPv4 block IPv6 ones.
        let v6 = Access::compile(&strings(&["::/0"]), &[]).unwrap();
        assert!(!v6.permits(ip("10.0.0.1")) && !v6.permits(ip("::ffff:10.0.0.1")));
        assert!(v6.permits(ip("fe80::1")));
        let v4 = Access::compile(&strings(&["0.0.0.0/0"]), &[]).unwrap();
        assert!(v4.permits(ip("::ffff:1.2.3.4")) && !v4.permits(ip("::1")));
    }

    #[test]
    fn access_bad_cidr() {
        let e = Access::compile(&strings(&["10.0.0.0/33"]), &[]).unwrap_err();
        assert_eq!(
            e,
            "allow: invalid CIDR \"10.0.0.0/33\": IPv4 prefix length must be at most 32"
        );
        let e = Access::compile(&[], &strings(&["nope"])).unwrap_err();
        assert!(e.starts_with("deny: invalid CIDR \"nope\""), "{e}");
    }
}
