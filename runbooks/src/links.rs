//! Signed acknowledge/resolve links (stage 5, lifecycle).
//!
//! Every message carries two links, `<base_url>/ack?t=TOKEN` and `<base_url>/resolve?t=TOKEN`,
//! that `ztlake serve` honours. A token is `v1.<payload>.<signature>`: the payload (base64url
//! JSON) names the action, the alert, the actor (the on-call target the message went to) and
//! the expiry; the signature is HMAC-SHA256 over `v1.<payload>` with the configured key,
//! checked in constant time. A token whose signature does not match (any byte changed), whose
//! action differs from the path, or whose expiry has passed is rejected.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::clock::micros;
use crate::config::{LinksConfig, resolve};
use crate::error::{Error, Result};

/// Shortest accepted key, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// Longest token accepted for verification.
const MAX_TOKEN_LEN: usize = 4096;

/// The file holding the generated key inside the outbox directory.
pub const KEY_FILE: &str = "link.key";

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkAction {
    /// Acknowledge the alert (stops escalation).
    #[serde(rename = "ack")]
    Acknowledge,
    /// Resolve the alert.
    #[serde(rename = "resolve")]
    Resolve,
}

impl LinkAction {
    /// The URL path segment (`ack`, `resolve`).
    pub fn path(self) -> &'static str {
        match self {
            LinkAction::Acknowledge => "ack",
            LinkAction::Resolve => "resolve",
        }
    }

    /// The lifecycle step the action records.
    pub fn step(self) -> crate::lifecycle::StepKind {
        match self {
            LinkAction::Acknowledge => crate::lifecycle::StepKind::Acknowledged,
            LinkAction::Resolve => crate::lifecycle::StepKind::Resolved,
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The action.
    #[serde(rename = "a")]
    pub action: LinkAction,
    /// The alert.
    #[serde(rename = "id")]
    pub alert_id: String,
    /// Who the link was sent to (recorded as the actor).
    #[serde(rename = "by")]
    pub actor: String,
    /// Expiry, seconds since the epoch.
    #[serde(rename = "exp")]
    pub expires: i64,
}

/// Signs and verifies links.
#[derive(Clone)]
pub struct LinkSigner {
    mac: Hmac<Sha256>,
    base_url: String,
    expiry: Duration,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("expiry", &self.expiry)
            .finish()
    }
}

impl LinkSigner {
    /// A signer with `key` (at least [`MIN_KEY_LEN`] bytes), links under `base_url`, valid for
    /// `expiry`.
    ///
    /// # Errors
    /// [`Error::Config`] for a short key or a bad base URL.
    pub fn new(key: &[u8], base_url: &str, expiry: Duration) -> Result<LinkSigner> {
        if key.len() < MIN_KEY_LEN {
            return Err(Error::config(format!(
                "oncall.links.key: at least {MIN_KEY_LEN} bytes are needed, got {}",
                key.len()
            )));
        }
        let url = url::Url::parse(base_url)
            .map_err(|e| Error::config(format!("oncall.links.base_url: {base_url:?}: {e}")))?;
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|e| Error::config(format!("oncall.links.key: {e}")))?;
        Ok(LinkSigner { mac, base_url: url.as_str().trim_end_matches('/').to_owned(), expiry })
    }

    /// The signer of `config`: its key, or the key file in `outbox` (created with a random key
    /// on first use, readable only by its owner).
    ///
    /// # Errors
    /// [`Error::Config`] when the key cannot be resolved; [`Error::Outbox`] when the key file
    /// cannot be read or created.
    pub fn from_config(config: &LinksConfig, outbox: &Path) -> Result<LinkSigner> {
        let key = match &config.key {
            Some(v) => resolve(v, "oncall.links.key")?.into_bytes(),
            None => key_file(outbox)?,
        };
        LinkSigner::new(&key, &config.base_url, config.expiry)
    }

    /// The base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    /// A token for `action` on `alert_id` by `actor`, valid from `now` (µs) for the expiry.
    pub fn token(&self, action: LinkAction, alert_id: &str, actor: &str, now: i64) -> String {
        let expires = (now.saturating_add(micros(self.expiry))) / 1_000_000;
        let claims =
            LinkClaims { action, alert_id: alert_id.to_owned(), actor: actor.to_owned(), expires };
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("v1.{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    /// The full link for `action`.
    pub fn url(&self, action: LinkAction, alert_id: &str, actor: &str, now: i64) -> String {
        format!(
            "{}/{}?t={}",
            self.base_url,
            action.path(),
            self.token(action, alert_id, actor, now)
        )
    }

    /// Check `token` at `now` (µs) and return what it says.
    ///
    /// # Errors
    /// [`Error::Link`] when it is malformed, its signature does not match, or it has expired.
    pub fn verify(&self, token: &str, now: i64) -> Result<LinkClaims> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::Link("token too long".into()));
        }
        let mut parts = token.split('.');
        let (Some("v1"), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Link("malformed token".into()));
        };
        let sig = B64.decode(sig).map_err(|_| Error::Link("malformed signature".into()))?;
        let mut mac = self.mac();
        mac.update(b"v1.");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).map_err(|_| Error::Link("signature does not match".into()))?;
        let bytes = B64.decode(payload).map_err(|_| Error::Link("malformed payload".into()))?;
        let claims: LinkClaims =
            serde_json::from_slice(&bytes).map_err(|_| Error::Link("malformed payload".into()))?;
        if now / 1_000_000 >= claims.expires {
            return Err(Error::Link(format!(
                "expired at {}",
                crate::clock::rfc3339(claims.expires.saturating_mul(1_000_000))
            )));
        }
        Ok(claims)
    }
}

/// Read the key file of `outbox`, creating it with a random key when absent.
fn key_file(outbox: &Path) -> Result<Vec<u8>> {
    let path = outbox.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(k) => return Ok(k.trim_ascii().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::outbox(&path, e)),
    }
    std::fs::create_dir_all(outbox).map_err(|e| Error::outbox(outbox, e))?;
    let key: String = {
        use rand::Rng as _;
        let mut rng = rand::rng();
        (0..32).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
    };
    let tmp = outbox.join(format!(".{KEY_FILE}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(|e| Error::outbox(&tmp, e))?;
    f.write_all(key.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| Error::outbox(&tmp, e))?;
    // Another process may have created it meanwhile: the first key wins.
    match std::fs::hard_link(&tmp, &path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::outbox(&path, e)),
    }
    let _ = std::fs::remove_file(&tmp);
    std::fs::read(&path).map(|k| k.trim_ascii().to_vec()).map_err(|e| Error::outbox(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000_000_000;

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let s = LinkSigner::new(KEY, "https://ztlake.example.com/", Duration::from_secs(3600))
            .expect("signer");
        let url = s.url(LinkAction::Acknowledge, "00000000000000aa", "netsec", NOW);
        assert!(url.starts_with("https://ztlake.example.com/ack?t=v1."), "{url}");
        let token = url.split("t=").nth(1).expect("token");
        let claims = s.verify(token, NOW + 1).expect("valid");
        assert_eq!(claims.alert_id, "00000000000000aa");
        assert_eq!(claims.actor, "netsec");
        assert_eq!(claims.action, LinkAction::Acknowledge);
        let e = s.verify(token, NOW + 3_600_000_000).expect_err("expired");
        assert!(e.to_string().contains("expired"), "{e}");
    }

    #[test]
    fn tampered_tokens_and_other_keys_are_rejected() {
        let s = LinkSigner::new(KEY, "https://z.example.com", Duration::from_secs(60)).expect("s");
        let token = s.token(LinkAction::Acknowledge, "a1", "netsec", NOW);
        // Swap the payload for one that resolves another alert, keep the signature.
        let forged = s.token(LinkAction::Resolve, "a2", "netsec", NOW);
        let (_, sig) = token.rsplit_once('.').expect("sig");
        let (payload, _) = forged.rsplit_once('.').expect("payload");
        assert!(s.verify(&format!("{payload}.{sig}"), NOW).is_err());
        // Flip one character anywhere.
        for i in [4, token.len() / 2, token.len() - 2] {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(bytes).expect("ascii");
            assert!(s.verify(&t, NOW).is_err(), "flipped at {i}");
        }
        let other = LinkSigner::new(
            b"another key that is long enough!!",
            "https://z.example.com",
            Duration::from_secs(60),
        )
        .expect("other");
        assert!(other.verify(&token, NOW).is_err());
        for junk in ["", "v1", "v1..", "v2.a.b", "v1.a.b.c", &"x".repeat(10_000)] {
            assert!(s.verify(junk, NOW).is_err(), "{junk:?}");
        }
        assert!(
            LinkSigner::new(b"short", "https://z.example.com", Duration::from_secs(1)).is_err()
        );
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn the_default_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LinksConfig::default();
        let a = LinkSigner::from_config(&config, dir.path()).expect("a");
        let b = LinkSigner::from_config(&config, dir.path()).expect("b");
        let token = a.token(LinkAction::Resolve, "x", "y", NOW);
        assert!(b.verify(&token, NOW).is_ok(), "the same key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).expect("meta").permissions();
            assert_eq!(mode.mode() & 0o077, 0, "owner only");
        }
    }
}
