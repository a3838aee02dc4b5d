//! A stored object's header fields, compact. A `HeaderMap` of ten fields costs about
//! 1.4 KiB (its entry slots are ~100 bytes each and it keeps spare ones), more than the
//! 1 KiB body of a typical small object. Stored, the fields are their names (no
//! allocation for standard ones) and one block holding every value; a response is
//! built from them on each hit, which costs less than the memory it saves.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// Each name with the end offset of its value in `values`.
    names: Box<[(HeaderName, u32)]>,
    values: Bytes,
}

impl Fields {
    /// Copies the values into one exactly-sized block: header values parsed by hyper
    /// are slices of the connection's read buffer, which must not stay pinned.
    pub fn from_map(headers: &HeaderMap) -> Fields {
        let total: usize = headers.values().map(|v| v.len()).sum();
        let mut block = BytesMut::with_capacity(total);
        let mut names = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            block.extend_from_slice(value.as_bytes());
            // Header blocks are bounded far below 4 GiB by the request limits.
            names.push((name.clone(), u32::try_from(block.len()).unwrap_or(u32::MAX)));
        }
        Fields {
            names: names.into_boxed_slice(),
            values: block.freeze(),
        }
    }

    /// The fields as a map, with room for `extra` more (the ones a response adds).
    pub fn to_map_with(&self, extra: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.names.len() + extra);
        for (name, value) in self.iter() {
            map.append(name.clone(), value);
        }
        map
    }

    pub fn to_map(&self) -> HeaderMap {
        self.to_map_with(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> + '_ {
        let mut start = 0usize;
        self.names.iter().map(move |(name, end)| {
            let end = (*end as usize).min(self.values.len());
            let slice = self.values.slice(start.min(end)..end);
            start = end;
            // The bytes were a valid value when stored, so this cannot fail; an empty
            // value stands in rather than a panic.
            let value = HeaderValue::from_maybe_shared(slice)
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            (name, value)
        })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Bytes of names and values, for the store's weights.
    pub fn byte_len(&self) -> usize {
        self.values.len()
            + self
                .names
                .iter()
                .map(|(n, _)| n.as_str().len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn round_trips_order_and_duplicates() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("one"));
        h.append(header::ETAG, HeaderValue::from_static("\"v1\""));
        h.append("x-a", HeaderValue::from_static(""));
        h.append("x-b", HeaderValue::from_static("two, three"));
        let f = Fields::from_map(&h);
        assert_eq!(f.len(), 4);
        let m = f.to_map();
        let all: Vec<_> = m.get_all("x-a").iter().collect();
        assert_eq!(all, ["one", ""]);
        assert_eq!(m.get("x-b").unwrap(), "two, three");
        assert_eq!(m.get(header::ETAG).unwrap(), "\"v1\"");
        assert!(!m.contains_key(header::VARY));
        assert_eq!(m, h);
        assert!(Fields::from_map(&HeaderMap::new()).to_map().is_empty());
    }
}
