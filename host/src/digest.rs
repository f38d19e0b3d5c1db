//! `Digest`: the sha256 a run is pinned to. Bytes are verified against it before anything else
//! looks at them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Error;

/// A sha256 digest, written `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for logs and tables.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// Check `bytes` against this digest; on mismatch returns the digest they actually have.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), Digest> {
        let actual = Digest::of(bytes);
        if actual == *self { Ok(()) } else { Err(actual) }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let hex_part = s.strip_prefix("sha256:").ok_or_else(|| Error::Digest(s.to_string()))?;
        let mut out = [0u8; 32];
        if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut out).is_err() {
            return Err(Error::Digest(s.to_string()));
        }
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_verifies() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(d.verify(b"hello").is_ok());
        assert_eq!(d.verify(b"hellO").unwrap_err(), Digest::of(b"hellO"));
        assert!("sha256:zz".parse::<Digest>().is_err());
        assert!(
            "md5:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
                .parse::<Digest>()
                .is_err()
        );
    }
}
