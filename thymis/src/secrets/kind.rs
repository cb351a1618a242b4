//! Wire names of [`SecretKind`] and [`SecretProcessing`]: `FromStr` and serde as strings.

use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::SecretError;
use crate::module::{SecretKind, SecretProcessing};

/// Unknown names are echoed in errors; cut them so a pasted value cannot fill a log.
fn echo(name: &str) -> String {
    name.chars().take(40).collect()
}

impl FromStr for SecretKind {
    type Err = SecretError;

    /// Parses `single_line`, `multi_line`, `env_list` or `file`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| SecretError::UnknownKind(echo(s)))
    }
}

impl FromStr for SecretProcessing {
    type Err = SecretError;

    /// Parses `none` or `mkpasswd-yescrypt`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [SecretProcessing::None, SecretProcessing::MkpasswdYescrypt]
            .into_iter()
            .find(|processing| processing.as_str() == s)
            .ok_or_else(|| SecretError::UnknownProcessing(echo(s)))
    }
}

impl Serialize for SecretKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SecretKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(de::Error::custom)
    }
}

impl Serialize for SecretProcessing {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SecretProcessing {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(de::Error::custom)
    }
}
