//! The verification time: always an input, never read from the clock here.

use std::fmt;

/// A point in time, in whole seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// Parses an RFC 3339 UTC time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        s.parse::<der::DateTime>()
            .map(|d| Time(d.unix_duration().as_secs()))
            .map_err(|_| format!("{s:?} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)"))
    }

    /// From an X.509 time.
    pub fn from_der_time(t: &x509_cert::time::Time) -> Self {
        Time(t.to_unix_duration().as_secs())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match der::DateTime::from_unix_duration(std::time::Duration::from_secs(self.0)) {
            Ok(d) => write!(f, "{d}"),
            Err(_) => write!(f, "@{}", self.0),
        }
    }
}

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Time::parse_rfc3339("2025-12-10T22:14:21Z").unwrap();
        assert_eq!(t.0, 1_765_404_861);
        assert_eq!(t.to_string(), "2025-12-10T22:14:21Z");
        assert!(Time::parse_rfc3339("2025-12-10").is_err());
        assert!(Time::parse_rfc3339("2025-12-10T22:14:21+01:00").is_err());
    }
}
