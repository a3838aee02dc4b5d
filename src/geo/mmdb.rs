//! Lookups in a MaxMind DB (GeoIP2 / GeoLite2 City) file.
//!
//! The whole file is read into memory and checked with the reader's full
//! verification before it is used, so that a truncated or corrupt download
//! is refused at load time rather than failing lookups one by one later.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::pops::{LatLon, Place};

/// GeoIP2-City is ~120 MB and GeoLite2-City ~60 MB; anything far larger is
/// not a City database and would only waste memory.
pub const MAX_MMDB_BYTES: u64 = 1 << 30;

/// A loaded, verified database.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

// Only the fields lacquer uses are decoded: a City record has dozens of
// localized names that would cost an allocation each.
#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Country<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Country<'a>>,
    #[serde(borrow, default)]
    continent: Option<Continent<'a>>,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Deserialize, Default)]
struct Country<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Continent<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Location {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

impl GeoDb {
    /// Reads and verifies the file at `path`.
    pub fn open(path: &Path) -> Result<GeoDb, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_MMDB_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if bytes.len() as u64 > MAX_MMDB_BYTES {
            return Err(format!("{shown} is larger than {MAX_MMDB_BYTES} bytes"));
        }
        GeoDb::from_bytes(bytes).map_err(|e| format!("{shown}: {e}"))
    }

    /// Parses and verifies a database image.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, String> {
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| format!("not a valid MaxMind DB: {e}"))?;
        reader
            .verify()
            .map_err(|e| format!("MaxMind DB failed verification: {e}"))?;
        Ok(GeoDb { reader })
    }

    /// `database_type` and build date, for logs.
    pub fn describe(&self) -> String {
        let m = self.reader.metadata();
        format!(
            "{} built {}",
            m.database_type,
            httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.build_epoch)
            )
        )
    }

    /// What the database knows about `ip`; `None` when it has no record.
    /// An IPv6 address in an IPv4-only database has no record, not an error.
    pub fn lookup(&self, ip: IpAddr) -> Option<Place> {
        let result = self.reader.lookup(ip).ok()?;
        let record: Record<'_> = match result.decode() {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "geo: undecodable record");
                return None;
            }
        };
        let country = record
            .country
            .and_then(|c| c.iso_code)
            .or_else(|| record.registered_country.and_then(|c| c.iso_code))
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase);
        let continent = record
            .continent
            .and_then(|c| c.code)
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase);
        let location = record
            .location
            .and_then(|l| LatLon::new(l.latitude?, l.longitude?));
        Some(Place {
            country,
            continent,
            location,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        for bytes in [
            Vec::new(),
            vec![0u8; 100],
            b"\xab\xcd\xefMaxMind.com".to_vec(),
            b"\xab\xcd\xefMaxMind.com\xe0".to_vec(),
        ] {
            assert!(GeoDb::from_bytes(bytes).is_err());
        }
    }

    #[test]
    fn missing_file_is_an_error() {
        let err = GeoDb::open(Path::new("/nonexistent/x.mmdb")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
