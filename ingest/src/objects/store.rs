//! Building the object_store client of a source from its URL scheme: environment first
//! (object_store's `from_env` builders), then the explicit options.

use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use super::config::ObjectSourceConfig;
use crate::{Error, Result};

/// A store, the root of its source keys (`s3://bucket`, `file:///dir`), and the prefix to list.
pub(crate) struct Located {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) root: String,
    pub(crate) prefix: Option<Path>,
}

/// The prefix path of a cloud URL (`s3://bucket/a/b/` → `a/b`).
pub(crate) fn prefix_of(config: &ObjectSourceConfig, url: &Url) -> Result<Option<Path>> {
    let raw = url.path().trim_matches('/');
    if raw.is_empty() {
        return Ok(None);
    }
    let decoded = percent_decode(raw);
    Path::parse(&decoded)
        .map(Some)
        .map_err(|e| config.invalid(format!("bad prefix {decoded:?}: {e}")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes.get(i),
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (Some(b'%'), Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The options as config keys of one kind of store; an unknown name is an error naming it.
fn keys<K: FromStr>(
    config: &ObjectSourceConfig,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(K, String)>> {
    options
        .iter()
        .map(|(name, value)| {
            K::from_str(name).map(|k| (k, value.clone())).map_err(|_| {
                config.invalid(format!("unknown option {name:?} for this kind of store"))
            })
        })
        .collect()
}

fn build_error(config: &ObjectSourceConfig, e: object_store::Error) -> Error {
    Error::ObjectStore { url: config.url.clone(), op: "configure the store", cause: Box::new(e) }
}

/// Builds the store for `config`.
pub(crate) fn build(config: &ObjectSourceConfig) -> Result<Located> {
    config.validate()?;
    let url = config.parsed_url()?;
    let options = config.options.resolve().map_err(|e| config.invalid(e))?;
    if url.scheme() == "file" {
        let dir = url.to_file_path().map_err(|()| config.invalid("not a local path"))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| build_error(config, e))?;
        let root = url.as_str().trim_end_matches('/').to_owned();
        return Ok(Located { store: Arc::new(store), root, prefix: None });
    }
    let prefix = prefix_of(config, &url)?;
    let mut bucket_url = url.clone();
    bucket_url.set_path("");
    let root = bucket_url.as_str().trim_end_matches('/').to_owned();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let b = keys::<AmazonS3ConfigKey>(config, &options)?
                .into_iter()
                .fold(AmazonS3Builder::from_env().with_url(url.as_str()), |b, (k, v)| {
                    b.with_config(k, v)
                });
            Arc::new(b.build().map_err(|e| build_error(config, e))?)
        }
        "gs" => {
            let b = keys::<GoogleConfigKey>(config, &options)?
                .into_iter()
                .fold(GoogleCloudStorageBuilder::from_env().with_url(url.as_str()), |b, (k, v)| {
                    b.with_config(k, v)
                });
            Arc::new(b.build().map_err(|e| build_error(config, e))?)
        }
        _ => {
            let b = keys::<AzureConfigKey>(config, &options)?
                .into_iter()
                .fold(MicrosoftAzureBuilder::from_env().with_url(url.as_str()), |b, (k, v)| {
                    b.with_config(k, v)
                });
            Arc::new(b.build().map_err(|e| build_error(config, e))?)
        }
    };
    Ok(Located { store, root, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_decoded_paths() {
        let config = ObjectSourceConfig::new("s3://b/AWSLogs/");
        let url = config.parsed_url().unwrap();
        assert_eq!(prefix_of(&config, &url).unwrap().unwrap().as_ref(), "AWSLogs");
        let url = Url::parse("gs://b/a%20b/c").unwrap();
        assert_eq!(prefix_of(&config, &url).unwrap().unwrap().as_ref(), "a b/c");
        let url = Url::parse("az://container").unwrap();
        assert!(prefix_of(&config, &url).unwrap().is_none());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
