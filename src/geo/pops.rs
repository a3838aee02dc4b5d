//! The PoP table (`geo/pops.toml`) and the choice of a PoP for a client.
//!
//! The choice is a pure function of the table, the client's place and which
//! PoPs are up, so that every node of a deployment given the same inputs makes
//! the same choice: country override, then continent override, then the
//! nearest PoP by great-circle distance; ties go to the smaller name.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use http::Uri;
use serde::{Deserialize, Serialize};

/// A PoP table is a short hand-written list; anything larger is a mistake.
pub const MAX_POPS_FILE: u64 = 1 << 20;
/// Bound on PoPs, which also bounds the metric labels they become.
pub const MAX_POPS: usize = 1000;

/// The seven continent codes MaxMind uses (`continent.code`).
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Mean Earth radius (IUGG), the usual sphere for haversine distances.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point on the globe in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    /// `None` unless both are finite and in range, so that a bad record
    /// cannot turn into a NaN distance that would break the ordering.
    pub fn new(lat: f64, lon: f64) -> Option<LatLon> {
        let ok = lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon);
        ok.then_some(LatLon { lat, lon })
    }
}

/// Great-circle distance by the haversine formula, which stays accurate for
/// short distances where the spherical law of cosines loses precision.
pub fn haversine_km(a: LatLon, b: LatLon) -> f64 {
    let (phi1, phi2) = (a.lat.to_radians(), b.lat.to_radians());
    let dphi = (b.lat - a.lat).to_radians();
    let dlambda = (b.lon - a.lon).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    // Rounding can push h a hair above 1 for antipodal points.
    2.0 * EARTH_RADIUS_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

/// One point of presence.
#[derive(Debug, Clone, PartialEq)]
pub struct Pop {
    pub name: String,
    pub location: LatLon,
    /// `scheme://authority[/prefix]` without a trailing slash; a redirect
    /// appends the request's path and query.
    pub base_url: String,
    /// Probed with GET; 2xx means up. Without one the PoP is always up.
    pub health_url: Option<Uri>,
    /// ISO 3166-1 alpha-2 codes, upper case.
    pub countries: Vec<String>,
    /// MaxMind continent codes, upper case.
    pub continents: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PopFile {
    #[serde(default)]
    pop: Vec<PopEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PopEntry {
    name: String,
    lat: f64,
    lon: f64,
    base_url: String,
    health_url: Option<String>,
    #[serde(default)]
    countries: Vec<String>,
    #[serde(default)]
    continents: Vec<String>,
}

/// The validated table, sorted by name so that every scan is deterministic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PopTable {
    pops: Vec<Pop>,
}

/// How a PoP was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Override,
    Nearest,
    /// The client has a record but no location and no override matched, or
    /// every candidate is down: the configured default PoP.
    Fallback,
    /// The database has nothing for the client: the configured default PoP.
    NoRecord,
}

/// The outcome of [`PopTable::choose`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice<'a> {
    pub pop: &'a Pop,
    pub how: How,
    pub distance_km: Option<f64>,
}

/// What the database says about a client.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Place {
    pub country: Option<String>,
    pub continent: Option<String>,
    pub location: Option<LatLon>,
}

impl PopTable {
    /// Reads and validates a table file, refusing files over [`MAX_POPS_FILE`].
    pub fn load(path: &Path) -> Result<PopTable, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_POPS_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if bytes.len() as u64 > MAX_POPS_FILE {
            return Err(format!("{shown} is larger than {MAX_POPS_FILE} bytes"));
        }
        let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8"))?;
        PopTable::parse(&text).map_err(|e| format!("{shown}: {e}"))
    }

    /// Parses and validates table text. All problems are reported at once,
    /// one per line.
    pub fn parse(text: &str) -> Result<PopTable, String> {
        let file: PopFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        if file.pop.is_empty() {
            errors.push("at least one [[pop]] is required".to_string());
        }
        if file.pop.len() > MAX_POPS {
            errors.push(format!("more than {MAX_POPS} [[pop]] entries"));
        }
        let mut pops = Vec::with_capacity(file.pop.len());
        for (i, entry) in file.pop.into_iter().enumerate() {
            match validate_entry(entry) {
                Ok(pop) => pops.push(pop),
                Err(e) => errors.extend(e.into_iter().map(|m| format!("pop[{i}]: {m}"))),
            }
        }
        pops.sort_by(|a, b| a.name.cmp(&b.name));
        check_unique(&pops, &mut errors);
        if errors.is_empty() {
            Ok(PopTable { pops })
        } else {
            Err(errors.join("\n"))
        }
    }

    pub fn pops(&self) -> &[Pop] {
        &self.pops
    }

    pub fn get(&self, name: &str) -> Option<&Pop> {
        self.pops
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.pops.get(i))
    }

    /// Country override > continent override > nearest; PoPs for which
    /// `is_up` is false are skipped; the default PoP when nothing else fits
    /// (`None` only if the default is not in the table).
    pub fn choose(
        &self,
        place: Option<&Place>,
        default_pop: &str,
        is_up: impl Fn(&Pop) -> bool,
    ) -> Option<Choice<'_>> {
        let Some(place) = place else {
            return self.fallback(default_pop, How::NoRecord, None);
        };
        let distance = |p: &Pop| place.location.map(|l| haversine_km(l, p.location));
        let overrides = [
            place
                .country
                .as_deref()
                .map(|c| self.best(|p| p.countries.iter().any(|x| x == c), &is_up, &distance)),
            place
                .continent
                .as_deref()
                .map(|c| self.best(|p| p.continents.iter().any(|x| x == c), &is_up, &distance)),
        ];
        if let Some(pop) = overrides.into_iter().flatten().flatten().next() {
            return Some(Choice {
                pop,
                how: How::Override,
                distance_km: distance(pop),
            });
        }
        if place.location.is_some() {
            if let Some(pop) = self.best(|_| true, &is_up, &distance) {
                return Some(Choice {
                    pop,
                    how: How::Nearest,
                    distance_km: distance(pop),
                });
            }
        }
        self.fallback(default_pop, How::Fallback, place.location)
    }

    /// Among the PoPs matching `wanted` and up: the nearest if the distance
    /// is known, then the smallest name (the table is sorted by name, and the
    /// sort below is stable).
    fn best(
        &self,
        wanted: impl Fn(&Pop) -> bool,
        is_up: &impl Fn(&Pop) -> bool,
        distance: &impl Fn(&Pop) -> Option<f64>,
    ) -> Option<&Pop> {
        self.pops
            .iter()
            .filter(|p| wanted(p) && is_up(p))
            .min_by(|a, b| match (distance(a), distance(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.name.cmp(&b.name)),
                _ => a.name.cmp(&b.name),
            })
    }

    fn fallback(&self, default_pop: &str, how: How, from: Option<LatLon>) -> Option<Choice<'_>> {
        self.get(default_pop).map(|pop| Choice {
            pop,
            how,
            distance_km: from.map(|l| haversine_km(l, pop.location)),
        })
    }
}

fn check_unique(pops: &[Pop], errors: &mut Vec<String>) {
    for pair in pops.windows(2) {
        if let [a, b] = pair {
            if a.name == b.name {
                errors.push(format!("pop {:?} is listed more than once", a.name));
            }
        }
    }
    // An override claimed by two PoPs would be settled by name, silently;
    // the operator almost certainly meant only one of them.
    for (kind, list) in [
        (
            "country",
            (|p: &Pop| &p.countries) as fn(&Pop) -> &Vec<String>,
        ),
        ("continent", |p: &Pop| &p.continents),
    ] {
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for pop in pops {
            for code in list(pop) {
                if let Some(first) = owner.insert(code, &pop.name) {
                    if first != pop.name {
                        errors.push(format!(
                            "{kind} {code:?} is claimed by both {first:?} and {:?}",
                            pop.name
                        ));
                    }
                }
            }
        }
    }
}

fn validate_entry(e: PopEntry) -> Result<Pop, Vec<String>> {
    let mut errors = Vec::new();
    if !is_token(&e.name) || e.name.len() > 64 {
        errors.push(format!(
            "name {:?} must be 1-64 letters, digits or -._~ (it becomes a metric label and a header value)",
            e.name
        ));
    }
    let location = LatLon::new(e.lat, e.lon);
    if location.is_none() {
        errors.push(format!(
            "lat {} / lon {} must be within -90..90 / -180..180",
            e.lat, e.lon
        ));
    }
    let base_url = check_base_url(&e.base_url).map_err(|m| errors.push(m)).ok();
    let health_url = match e.health_url.as_deref().map(check_health_url) {
        Some(Ok(u)) => Some(u),
        Some(Err(m)) => {
            errors.push(m);
            None
        }
        None => None,
    };
    let countries = codes(&e.countries, "countries", &mut errors, |c| {
        c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic())
    });
    let continents = codes(&e.continents, "continents", &mut errors, |c| {
        CONTINENTS.contains(&c.to_ascii_uppercase().as_str())
    });
    match (location, base_url) {
        (Some(location), Some(base_url)) if errors.is_empty() => Ok(Pop {
            name: e.name,
            location,
            base_url,
            health_url,
            countries,
            continents,
        }),
        _ => Err(errors),
    }
}

fn codes(
    list: &[String],
    what: &str,
    errors: &mut Vec<String>,
    valid: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::with_capacity(list.len());
    for code in list {
        if valid(code) {
            out.push(code.to_ascii_uppercase());
        } else if what == "countries" {
            errors.push(format!(
                "countries: {code:?} is not an ISO 3166-1 alpha-2 code such as \"GB\""
            ));
        } else {
            errors.push(format!(
                "continents: {code:?} is not one of {}",
                CONTINENTS.join(", ")
            ));
        }
    }
    out
}

/// A redirect target: absolute http(s) URL without query or fragment, since
/// the request's own path and query are appended to it.
fn check_base_url(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("base_url {s:?} {why}");
    let uri: Uri = s
        .parse()
        .map_err(|_| bad("is not a URL such as \"https://eu-west.example.com\""))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must start with http:// or https://"));
    }
    if uri.host().map_or(true, str::is_empty) {
        return Err(bad("must name a host"));
    }
    if s.contains(['?', '#']) {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// Health probes are plain HTTP: they go to a PoP's own load balancer or
/// health endpoint, and this crate carries no TLS client.
fn check_health_url(s: &str) -> Result<Uri, String> {
    let bad = |why: &str| format!("health_url {s:?} {why}");
    let uri: Uri = s
        .parse()
        .map_err(|_| bad("is not a URL such as \"http://eu-west.example.com/health\""))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("must start with http:// (probes do not speak TLS)"));
    }
    if uri.host().map_or(true, str::is_empty) {
        return Err(bad("must name a host"));
    }
    Ok(uri)
}

/// RFC 9110 §5.6.2 `token` minus the characters that would need escaping in
/// a query parameter, a header parameter or a Prometheus label.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
        [[pop]]
        name = "eu-west"
        lat = 51.5074
        lon = -0.1278
        base_url = "https://eu-west.example.com/"
        health_url = "http://10.0.0.1:8080/health"
        continents = ["EU", "AF"]

        [[pop]]
        name = "us-east"
        lat = 38.9
        lon = -77.4
        base_url = "https://us-east.example.com"

        [[pop]]
        name = "ap-northeast"
        lat = 35.68
        lon = 139.69
        base_url = "https://ap-northeast.example.com"
        countries = ["kr"]
    "#;

    fn table() -> PopTable {
        PopTable::parse(TABLE).unwrap()
    }

    fn at(lat: f64, lon: f64) -> Place {
        Place {
            location: LatLon::new(lat, lon),
            ..Place::default()
        }
    }

    #[test]
    fn haversine_known_distances() {
        let london = LatLon::new(51.5074, -0.1278).unwrap();
        let new_york = LatLon::new(40.7128, -74.0060).unwrap();
        let d = haversine_km(london, new_york);
        assert!((d - 5570.0).abs() < 15.0, "{d}");
        assert_eq!(haversine_km(london, london), 0.0);
        let a = LatLon::new(0.0, 0.0).unwrap();
        let b = LatLon::new(0.0, 180.0).unwrap();
        assert!((haversine_km(a, b) - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
        // Across the antimeridian the short way round is taken.
        let west = LatLon::new(0.0, 179.5).unwrap();
        let east = LatLon::new(0.0, -179.5).unwrap();
        assert!(haversine_km(west, east) < 112.0);
    }

    #[test]
    fn latlon_rejects_out_of_range() {
        assert!(LatLon::new(f64::NAN, 0.0).is_none());
        assert!(LatLon::new(0.0, f64::INFINITY).is_none());
        assert!(LatLon::new(90.1, 0.0).is_none());
        assert!(LatLon::new(0.0, -180.1).is_none());
        assert!(LatLon::new(-90.0, 180.0).is_some());
    }

    #[test]
    fn parses_sorted_and_normalised() {
        let t = table();
        let names: Vec<_> = t.pops().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ap-northeast", "eu-west", "us-east"]);
        let eu = t.get("eu-west").unwrap();
        assert_eq!(eu.base_url, "https://eu-west.example.com");
        assert_eq!(t.get("ap-northeast").unwrap().countries, ["KR"]);
        assert!(t.get("nope").is_none());
    }

    #[test]
    fn nearest_then_overrides() {
        let t = table();
        let up = |_: &Pop| true;
        // Boston is nearest to us-east.
        let c = t.choose(Some(&at(42.36, -71.06)), "us-east", up).unwrap();
        assert_eq!((c.pop.name.as_str(), c.how), ("us-east", How::Nearest));
        assert!(c.distance_km.unwrap() > 500.0);
        // Korea is nearest to Tokyo anyway, but by override.
        let mut seoul = at(37.56, 126.97);
        seoul.country = Some("KR".into());
        let c = t.choose(Some(&seoul), "us-east", up).unwrap();
        assert_eq!(
            (c.pop.name.as_str(), c.how),
            ("ap-northeast", How::Override)
        );
        // Continent override beats distance: Cape Town goes to eu-west.
        let mut cape = at(-33.92, 18.42);
        cape.continent = Some("AF".into());
        let c = t.choose(Some(&cape), "us-east", up).unwrap();
        assert_eq!((c.pop.name.as_str(), c.how), ("eu-west", How::Override));
        // Country override beats continent override.
        let mut korean_in_eu = seoul.clone();
        korean_in_eu.continent = Some("EU".into());
        let c = t.choose(Some(&korean_in_eu), "us-east", up).unwrap();
        assert_eq!(c.pop.name, "ap-northeast");
    }

    #[test]
    fn down_pops_are_skipped() {
        let t = table();
        let not_us_east = |p: &Pop| p.name != "us-east";
        let c = t
            .choose(Some(&at(42.36, -71.06)), "us-east", not_us_east)
            .unwrap();
        assert_eq!((c.pop.name.as_str(), c.how), ("eu-west", How::Nearest));
        // Override target down: next rule (distance) decides.
        let mut cape = at(-33.92, 18.42);
        cape.continent = Some("AF".into());
        let c = t
            .choose(Some(&cape), "us-east", |p: &Pop| p.name != "eu-west")
            .unwrap();
        assert_eq!(c.how, How::Nearest);
        // Everything down: the default, even though it is down.
        let c = t
            .choose(Some(&at(42.36, -71.06)), "ap-northeast", |_: &Pop| false)
            .unwrap();
        assert_eq!(
            (c.pop.name.as_str(), c.how),
            ("ap-northeast", How::Fallback)
        );
    }

    #[test]
    fn no_record_and_no_location() {
        let t = table();
        let c = t.choose(None, "eu-west", |_: &Pop| true).unwrap();
        assert_eq!((c.pop.name.as_str(), c.how), ("eu-west", How::NoRecord));
        assert_eq!(c.distance_km, None);
        let country_only = Place {
            country: Some("FR".into()),
            ..Place::default()
        };
        let c = t
            .choose(Some(&country_only), "us-east", |_: &Pop| true)
            .unwrap();
        assert_eq!((c.pop.name.as_str(), c.how), ("us-east", How::Fallback));
        assert!(t.choose(None, "missing", |_: &Pop| true).is_none());
    }

    #[test]
    fn ties_go_to_the_smaller_name() {
        let t = PopTable::parse(
            r#"
            [[pop]]
            name = "b"
            lat = 10.0
            lon = 10.0
            base_url = "http://b.example"
            [[pop]]
            name = "a"
            lat = 10.0
            lon = 10.0
            base_url = "http://a.example"
            "#,
        )
        .unwrap();
        for _ in 0..3 {
            let c = t.choose(Some(&at(0.0, 0.0)), "b", |_: &Pop| true).unwrap();
            assert_eq!(c.pop.name, "a");
        }
    }

    #[test]
    fn rejects_bad_tables() {
        let cases = [
            ("", "at least one"),
            ("pop = 3", "invalid type"),
            ("[[pop]]\nname = \"x\"", "missing field"),
            (
                "[[pop]]\nname=\"a b\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x\"",
                "name",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=91.0\nlon=0.0\nbase_url=\"http://x\"",
                "lat",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"ftp://x\"",
                "base_url",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x/?a=1\"",
                "query",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x\"\nhealth_url=\"https://x/h\"",
                "health_url",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x\"\ncountries=[\"GBR\"]",
                "countries",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x\"\ncontinents=[\"XX\"]",
                "continents",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x\"\nextra=1",
                "unknown field",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x\"\n[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://y\"",
                "more than once",
            ),
            (
                "[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://x\"\ncountries=[\"FR\"]\n[[pop]]\nname=\"b\"\nlat=0.0\nlon=0.0\nbase_url=\"http://y\"\ncountries=[\"fr\"]",
                "claimed by both",
            ),
        ];
        for (text, needle) in cases {
            let err = PopTable::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn shipped_example_is_valid() {
        let text = include_str!("../../geo/pops.toml");
        let t = PopTable::parse(text).unwrap();
        assert!(t.pops().len() >= 5);
    }
}
