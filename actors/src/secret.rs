//! `Secret`: a string that never prints itself.
//!
//! Runner tokens, job tokens, Clever tokens and admin tokens travel in this
//! type. `Debug`, `Display` and slog print a mask; the value is reachable only
//! through [`Secret::expose`], so every place that sends a secret on the wire
//! is greppable. Serialisation (state file only) writes the real value.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The mask printed in place of any secret.
pub const MASK: &str = "[MASKED]";

/// A secret string (token, password). Compare and clone freely; print never.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for the wire or the state file. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl slog::Value for Secret {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        serializer.emit_str(key, MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask_the_value() {
        let s = Secret::new("glrt-very-secret");
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{:?}", Some(&s)), format!("Some({MASK})"));
        assert_eq!(s.expose(), "glrt-very-secret");
    }

    #[test]
    fn serde_round_trip_keeps_the_value() {
        let s = Secret::new("tok");
        let json = serde_json::to_string(&s).expect("serialise");
        assert_eq!(json, "\"tok\"");
        let back: Secret = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, s);
    }
}
