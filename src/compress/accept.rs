//! Accept-Encoding (RFC 9110 12.5.3): which of lacquer's encodings a client prefers.

use http::header::{HeaderMap, ACCEPT_ENCODING};

use super::Encoding;

/// Most list members read from a request's Accept-Encoding: real clients send a
/// handful, and the field is client input.
const MAX_MEMBERS: usize = 32;

/// Weights in thousandths, as RFC 9110 12.4.2 limits them to three decimals.
type Weight = u16;

/// The encoding to send: the acceptable one with the highest weight, brotli before
/// gzip at equal weights; None for identity. Without the field (or with it empty) only
/// identity is asked for. Identity not listed counts as acceptable but least preferred,
/// so `gzip;q=0.5` still gets gzip; listed with a higher weight than every encoding, it
/// wins.
pub fn preferred(headers: &HeaderMap) -> Option<Encoding> {
    let mut br: Option<Weight> = None;
    let mut gzip: Option<Weight> = None;
    let mut identity: Option<Weight> = None;
    let mut star: Option<Weight> = None;
    let members = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(MAX_MEMBERS);
    for member in members {
        let mut parts = member.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        if coding.is_empty() {
            continue;
        }
        let mut weight: Option<Weight> = Some(1000);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                // A malformed weight makes the member meaningless: it is skipped.
                weight = parse_q(value.trim());
                break;
            }
        }
        let Some(weight) = weight else {
            continue;
        };
        // The first mention of a coding counts; a client repeating one is confused.
        let slot = if coding.eq_ignore_ascii_case("br") {
            &mut br
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut identity
        } else if coding == "*" {
            &mut star
        } else {
            continue;
        };
        slot.get_or_insert(weight);
    }
    let br = br.or(star).unwrap_or(0);
    let gzip = gzip.or(star).unwrap_or(0);
    // Unlisted identity ranks below any encoding with a weight above zero.
    let identity = identity.unwrap_or(0);
    let (best, weight) = if br >= gzip {
        (Encoding::Br, br)
    } else {
        (Encoding::Gzip, gzip)
    };
    (weight > 0 && weight >= identity).then_some(best)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(s: &str) -> Option<Weight> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += Weight::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn pick(values: &[&str]) -> Option<Encoding> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        preferred(&h)
    }

    #[test]
    fn plain_lists() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[""]), None);
        assert_eq!(pick(&["identity"]), None);
        assert_eq!(pick(&["gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["x-gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br"]), Some(Encoding::Br));
        assert_eq!(pick(&["gzip, deflate, br"]), Some(Encoding::Br));
        assert_eq!(pick(&["gzip", "br"]), Some(Encoding::Br));
        assert_eq!(pick(&["GZIP , Br"]), Some(Encoding::Br));
        assert_eq!(pick(&["deflate, zstd"]), None);
    }

    #[test]
    fn weights() {
        assert_eq!(pick(&["br;q=0.5, gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=1.0, gzip;q=0.999"]), Some(Encoding::Br));
        assert_eq!(pick(&["br;q=0, gzip;q=0"]), None);
        assert_eq!(pick(&["br; q=0, gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["gzip;q=0.5"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["gzip;q=0.5, identity"]), None);
        assert_eq!(pick(&["gzip;q=0.5, identity;q=0.5"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["gzip, identity;q=0"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["Br;Q=0.8, gzip;q=0.7"]), Some(Encoding::Br));
    }

    #[test]
    fn star() {
        assert_eq!(pick(&["*"]), Some(Encoding::Br));
        assert_eq!(pick(&["*;q=0"]), None);
        assert_eq!(pick(&["gzip, *;q=0"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=0, *"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["identity, *;q=0.5"]), None);
    }

    #[test]
    fn malformed_members_are_skipped() {
        assert_eq!(pick(&["br;q=2, gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=0.1234, gzip;q=0.1"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=abc"]), None);
        assert_eq!(pick(&["br;q=1.5"]), None);
        assert_eq!(pick(&[";;;,,,br"]), Some(Encoding::Br));
        assert_eq!(pick(&["gzip;q"]), Some(Encoding::Gzip));
        // Bounded: members past the limit are not read.
        let long = format!("{}br", "x,".repeat(MAX_MEMBERS));
        assert_eq!(pick(&[&long]), None);
    }
}
