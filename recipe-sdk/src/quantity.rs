//! Kubernetes resource quantities (`128Mi`, `1.5Gi`, `500m`, `2`), parsed into numbers so actors
//! can compare a requested limit with the current one and with their configured maximum.
//!
//! ```
//! use recipe_sdk::quantity::Quantity;
//! let a: Quantity = "128Mi".parse().unwrap();
//! let b: Quantity = "0.25Gi".parse().unwrap();
//! assert!(b > a);
//! assert_eq!(a.doubled().to_string(), "256Mi");
//! assert_eq!("500m".parse::<Quantity>().unwrap().value(), 0.5);
//! assert!("12 apples".parse::<Quantity>().is_err());
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

const SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("m", 0.001),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
    ("", 1.0),
];

/// A parsed quantity: its number, its suffix, and its value in base units (bytes, cores).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    number: f64,
    suffix: &'static str,
}

impl Quantity {
    /// The value in base units: bytes for memory and storage, cores for CPU.
    pub fn value(&self) -> f64 {
        self.number
            * SUFFIXES
                .iter()
                .find(|(s, _)| *s == self.suffix)
                .map_or(1.0, |(_, m)| *m)
    }

    /// Twice this quantity, in the same unit.
    pub fn doubled(&self) -> Quantity {
        Quantity {
            number: self.number * 2.0,
            suffix: self.suffix,
        }
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.value().partial_cmp(&other.value())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.number, self.suffix)
    }
}

impl FromStr for Quantity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, suffix) = t.split_at(split);
        let bad = || format!("`{s}` is not a Kubernetes quantity (like 128Mi, 1.5Gi, 500m or 2)");
        let number: f64 = num.parse().map_err(|_| bad())?;
        let suffix = SUFFIXES
            .iter()
            .map(|(sfx, _)| *sfx)
            .find(|sfx| *sfx == suffix)
            .ok_or_else(bad)?;
        if !number.is_finite() || number < 0.0 || num.len() > 20 {
            return Err(bad());
        }
        Ok(Quantity { number, suffix })
    }
}
