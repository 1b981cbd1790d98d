//! Configuration of an object-store source: the prefix URL, the format of its objects, how
//! often to poll, and the object_store options.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::settings::{Properties, duration};
use crate::{Error, Result};

/// URL schemes an object-store source may poll.
pub const SCHEMES: [&str; 9] = ["s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl", "file"];

/// One bucket or container prefix to poll for new objects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSourceConfig {
    /// Where the objects arrive: `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` (also `azure://`, `abfs[s]://container@account.dfs.core.windows.net/prefix`),
    /// or `file:///directory` for a local directory. Every object under the prefix, at any
    /// depth, is read once.
    pub url: String,
    /// ztlake format of the records in these objects, or `auto` (default) to detect it per
    /// record; see `ztlake formats`. One source per prefix, so each prefix has its format.
    #[serde(default = "default_format")]
    pub format: String,
    /// How often to list the prefix for new objects (default `"1m"`).
    #[serde(default = "default_poll_interval", with = "duration")]
    pub poll_interval: Duration,
    /// object_store options, on top of the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`
    /// variables, as object_store's `from_env` builders read them): e.g. `region`, `endpoint`
    /// and `allow_http` for an emulator, `access_key_id` / `secret_access_key`,
    /// `account_name` / `access_key`, `service_account_key`. Values are strings,
    /// `{ "env": "VAR" }` or `{ "file": "PATH" }`; secrets are never printed.
    #[serde(default)]
    pub options: Properties,
    /// Most new objects handed out per poll, oldest keys first (default 1000); the rest come
    /// with the next polls.
    #[serde(default = "default_max_objects_per_poll")]
    pub max_objects_per_poll: usize,
}

/// Default format: `auto`.
pub fn default_format() -> String {
    "auto".to_owned()
}

/// Default poll interval: one minute (flow logs arrive every 1–10 minutes).
pub fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}

/// Default most objects per poll.
pub fn default_max_objects_per_poll() -> usize {
    1000
}

impl ObjectSourceConfig {
    /// A configuration for `url` with defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            format: default_format(),
            poll_interval: default_poll_interval(),
            options: Properties::default(),
            max_objects_per_poll: default_max_objects_per_poll(),
        }
    }

    pub(crate) fn invalid(&self, detail: impl Into<String>) -> Error {
        Error::Config { source_name: self.url.clone(), detail: detail.into() }
    }

    /// The URL, parsed and checked.
    ///
    /// # Errors
    /// [`Error::Config`] for an unparseable URL or an unsupported scheme.
    pub fn parsed_url(&self) -> Result<Url> {
        let url = Url::parse(self.url.trim()).map_err(|e| self.invalid(format!("bad URL: {e}")))?;
        if !SCHEMES.contains(&url.scheme()) {
            return Err(self.invalid(format!(
                "unsupported scheme {}; use one of {}",
                url.scheme(),
                SCHEMES.join(", ")
            )));
        }
        if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
            return Err(self.invalid("the URL names no bucket or container"));
        }
        Ok(url)
    }

    /// Checks the configuration (and that every option value can be read).
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        let url = self.parsed_url()?;
        if url.scheme() == "file" && !self.options.0.is_empty() {
            return Err(self.invalid("a file:// source takes no options"));
        }
        if self.poll_interval.is_zero() {
            return Err(self.invalid("poll_interval must be positive"));
        }
        if self.max_objects_per_poll == 0 {
            return Err(self.invalid("max_objects_per_poll must be at least 1"));
        }
        if self.format.trim().is_empty() {
            return Err(self.invalid("empty format"));
        }
        self.options.resolve().map_err(|e| self.invalid(e))?;
        Ok(())
    }
}
