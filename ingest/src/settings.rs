//! Configuration values shared by the network sources (Kafka, object stores).
//!
//! - [`ConfigValue`]: a setting given inline, or read from an environment variable or a file at
//!   start-up, so secrets (SASL passwords, storage keys) need not sit in the config file. Its
//!   `Debug` never prints an inline value.
//! - [`Properties`]: a map of pass-through client settings (librdkafka properties,
//!   object_store options) whose `Debug` redacts the values of secret-looking keys.
//! - `duration`: serde helpers for human durations (`"250ms"`, `"5m"`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// A configuration value: inline, or from an environment variable or a file.
///
/// In a config file: `"value"` (numbers and booleans are taken as their text), `{ "env": "VAR" }`
/// or `{ "file": "/run/secrets/x" }` (the file's content without its trailing newline).
#[derive(Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// The value itself.
    Inline(String),
    /// The value of an environment variable, read at start-up.
    Env(String),
    /// The content of a file, read at start-up, trailing newline removed.
    File(PathBuf),
}

impl ConfigValue {
    /// The value: inline, or read from its variable or file now.
    ///
    /// # Errors
    /// A message naming the variable or file when it is unset, not UTF-8 or unreadable.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            ConfigValue::Inline(v) => Ok(v.clone()),
            ConfigValue::Env(var) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => format!("environment variable {var} is not set"),
                std::env::VarError::NotUnicode(_) => {
                    format!("environment variable {var} is not valid UTF-8")
                }
            }),
            ConfigValue::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
    }
}

impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::Inline(v.to_owned())
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Inline(_) => f.write_str("<redacted>"),
            ConfigValue::Env(var) => write!(f, "env:{var}"),
            ConfigValue::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FromEnv {
            env: String,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FromFile {
            file: PathBuf,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
            Bool(bool),
            Env(FromEnv),
            File(FromFile),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a string, number or boolean, { \"env\": VAR } or { \"file\": PATH }",
            )
        })?;
        Ok(match raw {
            Raw::Text(v) => ConfigValue::Inline(v),
            Raw::Int(v) => ConfigValue::Inline(v.to_string()),
            Raw::Float(v) => ConfigValue::Inline(v.to_string()),
            Raw::Bool(v) => ConfigValue::Inline(v.to_string()),
            Raw::Env(e) => ConfigValue::Env(e.env),
            Raw::File(f) => ConfigValue::File(f.file),
        })
    }
}

/// Pass-through client settings, name → value. `Debug` shows the values of ordinary settings
/// (`security.protocol`, `endpoint`) and redacts those whose name looks secret (password, secret,
/// token, key, jaas, sas, credential).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Properties(pub BTreeMap<String, ConfigValue>);

impl Properties {
    /// Every setting with its value resolved (environment variables and files read now).
    ///
    /// # Errors
    /// A message naming the setting whose value cannot be read.
    pub fn resolve(&self) -> Result<BTreeMap<String, String>, String> {
        self.0
            .iter()
            .map(|(k, v)| v.resolve().map(|v| (k.clone(), v)).map_err(|e| format!("{k}: {e}")))
            .collect()
    }

    /// Sets `name` to an inline value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), ConfigValue::Inline(value.into()));
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// Whether a setting's name suggests its value is a secret: it contains `password`, `secret`,
/// `token`, `jaas`, `credential` or `connection_string`, or has `key` or `sas` as a word
/// (`ssl.key.pem`, `access_key`, `sas_key`; not `sasl.username`).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let words = ["password", "secret", "token", "jaas", "credential", "connection_string"];
    words.iter().any(|w| name.contains(w))
        || name.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == "key" || w == "sas")
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.0 {
            match v {
                ConfigValue::Inline(text) if !is_secret_name(k) => map.entry(k, text),
                other => map.entry(k, other),
            };
        }
        map.finish()
    }
}

/// serde helpers for durations written as human strings (`"250ms"`, `"30s"`, `"5m"`).
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_inline_from_env_or_file_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        let json = format!(
            r#"{{"security.protocol": "SASL_SSL", "sasl.password": {{"file": {:?}}},
                "session.timeout.ms": 45000, "sasl.username": "$ConnectionString",
                "ssl.key.password": "inline-secret", "other": {{"env": "ZTLAKE_SURELY_UNSET_VAR"}}}}"#,
            secret.display().to_string()
        );
        let props: Properties = serde_json::from_str(&json).unwrap();
        let resolved_pw = props.0["sasl.password"].resolve().unwrap();
        assert_eq!(resolved_pw, "s3cr3t");
        assert_eq!(props.0["session.timeout.ms"].resolve().unwrap(), "45000");
        let err = props.resolve().unwrap_err();
        assert!(err.contains("other") && err.contains("ZTLAKE_SURELY_UNSET_VAR"), "{err}");
        let debug = format!("{props:?}");
        assert!(debug.contains("SASL_SSL"), "{debug}");
        assert!(!debug.contains("s3cr3t") && !debug.contains("inline-secret"), "{debug}");
        assert!(debug.contains("file:"), "{debug}");
        assert!(!format!("{:?}", ConfigValue::from("x-secret")).contains("x-secret"));
        for secret in ["sasl.password", "ssl.key.pem", "secret_access_key", "sas_key", "access_key"]
        {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in ["sasl.username", "sasl.mechanism", "endpoint", "region", "keyspace"] {
            assert!(!is_secret_name(plain), "{plain}");
        }
        assert!(serde_json::from_str::<ConfigValue>(r#"{"env": "A", "file": "b"}"#).is_err());
        assert!(serde_json::from_str::<ConfigValue>(r#"[1]"#).is_err());
    }
}
