//! The bytes an entry is stored as in Redis: a fixed header, then the value in
//! postcard (compact, schema-less binary serde).
//!
//! ```text
//! 0..2   magic "NP"
//! 2      format version (1)
//! 3..11  type tag: FNV-1a of the Rust type name and the namespace version
//! 11..19 expiry, Unix milliseconds
//! 19..23 compute time in milliseconds (for early refresh)
//! 23..   postcard payload
//! ```
//!
//! A reader checks the tag before decoding, so a deploy that changes a type (and
//! bumps its namespace version, or renames the type) reads an old entry as a miss
//! instead of misreading it; a payload that still fails to decode is a miss too.

use serde::de::DeserializeOwned;
use serde::Serialize;

const MAGIC: &[u8; 2] = b"NP";
const FORMAT: u8 = 1;
/// Header length in bytes.
pub const HEADER: usize = 23;

/// Decoded header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Unix milliseconds at which the entry expires.
    pub expires_at_ms: u64,
    /// How long computing the value took, in milliseconds.
    pub delta_ms: u32,
}

/// FNV-1a over the type name and the namespace version: stable across builds of the
/// same source, different as soon as either changes.
#[must_use]
pub fn type_tag<T: ?Sized>(version: u32) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(std::any::type_name::<T>().as_bytes());
    h.write(&version.to_le_bytes());
    h.finish()
}

/// Header plus payload.
pub fn encode<T: Serialize>(
    value: &T,
    tag: u64,
    header: Header,
) -> Result<Vec<u8>, postcard::Error> {
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&header.expires_at_ms.to_le_bytes());
    out.extend_from_slice(&header.delta_ms.to_le_bytes());
    postcard::to_io(value, out)
}

/// The value and header, or `None` for anything that is not an entry of this type
/// and version (wrong magic, format, tag, or an undecodable payload).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], tag: u64) -> Option<(T, Header)> {
    if bytes.len() < HEADER || &bytes[0..2] != MAGIC || bytes[2] != FORMAT {
        return None;
    }
    let field = |r: std::ops::Range<usize>| bytes.get(r);
    let stored_tag = u64::from_le_bytes(field(3..11)?.try_into().ok()?);
    if stored_tag != tag {
        return None;
    }
    let header = Header {
        expires_at_ms: u64::from_le_bytes(field(11..19)?.try_into().ok()?),
        delta_ms: u32::from_le_bytes(field(19..23)?.try_into().ok()?),
    };
    let value = postcard::from_bytes(&bytes[HEADER..]).ok()?;
    Some((value, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct V1 {
        a: u32,
        b: String,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct V2 {
        a: u32,
        b: String,
        c: u64,
    }

    const H: Header = Header {
        expires_at_ms: 1_800_000_000_000,
        delta_ms: 12,
    };

    #[test]
    fn round_trips_with_header() {
        let v = V1 {
            a: 7,
            b: "x".into(),
        };
        let bytes = encode(&v, type_tag::<V1>(1), H).unwrap_or_default();
        assert_eq!(
            bytes.len(),
            HEADER + 3,
            "postcard is compact: 1 + 1 + 1 bytes"
        );
        assert_eq!(decode::<V1>(&bytes, type_tag::<V1>(1)), Some((v, H)));
    }

    #[test]
    fn another_type_or_version_is_a_miss_not_a_misread() {
        let bytes = encode(
            &V1 {
                a: 7,
                b: "x".into(),
            },
            type_tag::<V1>(1),
            H,
        )
        .unwrap_or_default();
        assert_eq!(decode::<V1>(&bytes, type_tag::<V1>(2)), None);
        assert_eq!(decode::<V2>(&bytes, type_tag::<V2>(1)), None);
        // Even a forged tag cannot make a short payload decode as the longer type.
        let forged = encode(
            &V1 {
                a: 7,
                b: "x".into(),
            },
            type_tag::<V2>(1),
            H,
        )
        .unwrap_or_default();
        assert_eq!(decode::<V2>(&forged, type_tag::<V2>(1)), None);
        assert_eq!(decode::<V1>(b"garbage", type_tag::<V1>(1)), None);
        assert_eq!(decode::<V1>(&[], type_tag::<V1>(1)), None);
    }
}
