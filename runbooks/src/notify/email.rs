//! Email (stage 5, delivery) through lettre: SMTP with implicit TLS or required STARTTLS (plain
//! SMTP only to a loopback server with an explicit flag), or — without an SMTP server — `.eml`
//! files in the outbox's `mail/` directory (lettre's file transport), so the default setup sends
//! nothing anywhere and still shows every message.
//!
//! A message has a plain-text body and an HTML alternative, both quoted-printable with CRLF line
//! endings. Header values are built only from configuration (From, To) and cleaned alert values
//! (Subject: no control characters, so no CR/LF can start a new header); recipients come only
//! from the target's configuration. The SMTP client dot-stuffs the body, so a line holding a
//! single `.` cannot end the DATA phase early. Message-IDs are stable per message
//! (`<entry.revision@ztlake>`) and updates refer to the first message, so one incident is one
//! thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, FileTransport, Message, Tokio1Executor, Transport as _,
};

use super::message::{html_body, subject, text_body};
use super::{BuildContext, Notification, Notifier, NotifierKind};
use crate::config::{SmtpConfig, SmtpSecurity, resolve};
use crate::error::{Error, Result};

/// The channel name of email.
pub const CHANNEL: &str = "email";

/// The registry entry.
pub(crate) const KIND: NotifierKind = NotifierKind { name: "email", build };

/// The directory of `.eml` files inside an outbox.
pub fn mail_dir(outbox: &Path) -> PathBuf {
    outbox.join("mail")
}

fn build(ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Notifier>>> {
    if !ctx.config.targets.iter().any(|t| !t.email.is_empty()) {
        return Ok(Vec::new());
    }
    let from: Mailbox = ctx
        .config
        .from
        .parse()
        .map_err(|e| Error::config(format!("oncall.from: {:?}: {e}", ctx.config.from)))?;
    let transport = match &ctx.config.smtp {
        Some(smtp) => Transport::Smtp(Box::new(smtp_transport(smtp)?)),
        None => {
            let dir = mail_dir(ctx.outbox);
            let staging = ctx.outbox.join("tmp").join("mail");
            for d in [&dir, &staging] {
                std::fs::create_dir_all(d).map_err(|e| Error::outbox(d, e))?;
            }
            Transport::Files { dir, staging }
        }
    };
    let (destination, timeout) = match &ctx.config.smtp {
        Some(s) => (format!("smtp://{}:{} ({:?})", s.host, s.port(), s.security), s.timeout),
        None => (format!("outbox {}", mail_dir(ctx.outbox).display()), Duration::from_secs(30)),
    };
    Ok(vec![Arc::new(EmailNotifier { transport, from, destination, timeout })])
}

/// The SMTP transport of `smtp` (credentials read now; never printed).
fn smtp_transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut params = TlsParameters::builder(smtp.host.clone());
    if let Some(ca) = &smtp.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| Error::config(format!("oncall.smtp.ca_file: {}: {e}", ca.display())))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| Error::config(format!("oncall.smtp.ca_file: {}: {e}", ca.display())))?;
        params = params.add_root_certificate(cert);
    }
    let tls = match smtp.security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::Tls | SmtpSecurity::Starttls => {
            let params = params
                .build_rustls()
                .map_err(|e| Error::config(format!("oncall.smtp: TLS setup: {e}")))?;
            if smtp.security == SmtpSecurity::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port())
        .tls(tls)
        .timeout(Some(smtp.timeout));
    if let Some(name) = &smtp.hello_name {
        builder = builder.hello_name(ClientId::Domain(name.clone()));
    }
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        let user = resolve(user, "oncall.smtp.username")?;
        let password = resolve(password, "oncall.smtp.password")?;
        builder = builder.credentials(Credentials::new(user, password));
    }
    Ok(builder.build())
}

enum Transport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    /// lettre's file transport writes into `staging`; the file is then renamed into `dir`
    /// under the message's stable name (atomic, and a retry overwrites instead of
    /// duplicating).
    Files {
        dir: PathBuf,
        staging: PathBuf,
    },
}

/// The email notifier.
pub struct EmailNotifier {
    transport: Transport,
    from: Mailbox,
    destination: String,
    timeout: Duration,
}

/// The Message-ID of message `revision` of outbox entry `entry_key`.
pub fn message_id(entry_key: &str, revision: u32) -> String {
    format!("<{entry_key}.{revision}@ztlake>")
}

/// The email for `n` from `from` (public so tests can check the raw message).
///
/// # Errors
/// [`Error::Delivery`] (not transient) when a recipient address is invalid.
pub fn compose(n: &Notification, from: &Mailbox) -> Result<Message> {
    let bad = |message: String| Error::Delivery {
        channel: n.channel.clone(),
        destination: n.recipients.join(", "),
        message,
        transient: false,
    };
    let micros = u64::try_from(n.time.max(0)).unwrap_or(0);
    let mut b = Message::builder()
        .from(from.clone())
        .subject(subject(n))
        .message_id(Some(message_id(&n.entry_key, n.revision)))
        .date(SystemTime::UNIX_EPOCH + Duration::from_micros(micros));
    for r in &n.recipients {
        let mailbox: Mailbox = r.parse().map_err(|e| bad(format!("recipient {r:?}: {e}")))?;
        b = b.to(mailbox);
    }
    if n.revision > 0 {
        let first = message_id(&n.entry_key, 0);
        b = b.in_reply_to(first.clone()).references(first);
    }
    let part = |ct: ContentType, body: String| {
        let body = Body::new_with_encoding(body, ContentTransferEncoding::QuotedPrintable)
            .unwrap_or_else(Body::new);
        SinglePart::builder().header(ct).body(body)
    };
    let alternative = MultiPart::alternative()
        .singlepart(part(ContentType::TEXT_PLAIN, text_body(n)))
        .singlepart(part(ContentType::TEXT_HTML, html_body(n)));
    b.multipart(alternative).map_err(|e| bad(format!("building the message: {e}")))
}

#[async_trait::async_trait]
impl Notifier for EmailNotifier {
    fn channel(&self) -> &str {
        CHANNEL
    }

    fn destination(&self) -> String {
        self.destination.clone()
    }

    fn timeout(&self) -> Duration {
        // Connect, EHLO, STARTTLS, AUTH and DATA each get the configured timeout.
        self.timeout.saturating_mul(3)
    }

    async fn send(&self, n: &Notification) -> Result<String> {
        let message = compose(n, &self.from)?;
        let fail = |message: String, transient: bool| Error::Delivery {
            channel: n.channel.clone(),
            destination: format!("{} via {}", n.recipients.join(", "), self.destination),
            message,
            transient,
        };
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(response) => {
                    let text: Vec<&str> = response.message().collect();
                    Ok(format!(
                        "accepted by the SMTP server ({}: {})",
                        response.code(),
                        super::clean(&text.join(" "), 120)
                    ))
                }
                Err(e) => Err(fail(describe_smtp(&e), !e.is_permanent())),
            },
            Transport::Files { dir, staging } => {
                // Written and moved into place on one blocking thread: one hand-off per
                // message, not one per file operation.
                let (dir, staging) = (dir.clone(), staging.clone());
                let name = format!("{}.{}.eml", n.entry_key, n.revision);
                let target = tokio::task::spawn_blocking(move || {
                    let id = FileTransport::new(&staging)
                        .send(&message)
                        .map_err(|e| format!("writing the .eml file: {e}"))?;
                    let written = staging.join(format!("{id}.eml"));
                    let target = dir.join(&name);
                    std::fs::rename(&written, &target)
                        .map_err(|e| format!("moving {} into place: {e}", written.display()))?;
                    Ok::<_, String>(target)
                })
                .await
                .map_err(|e| fail(format!("writing the .eml file: {e}"), true))?
                .map_err(|message| fail(message, true))?;
                Ok(format!("written to {}", target.display()))
            }
        }
    }
}

/// A readable description of an SMTP error, with its cause chain.
fn describe_smtp(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    if e.is_tls() || text.contains("STARTTLS") {
        text.push_str(" (refusing to send without TLS)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::MessageKind;
    use crate::notify::message::tests::notification;

    /// The header names of a raw message (continuation lines belong to the header above).
    pub(crate) fn header_names(raw: &str) -> Vec<String> {
        let head = raw.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
            .collect()
    }

    #[test]
    fn a_hostile_entity_cannot_add_headers_or_recipients() {
        let n = notification(MessageKind::New);
        let from: Mailbox = "ztlake <alerts@example.com>".parse().expect("from");
        let message = compose(&n, &from).expect("compose");
        let to: Vec<String> = message.envelope().to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["netsec@example.com"]);
        let raw = String::from_utf8(message.formatted()).expect("ascii");
        let mut names = header_names(&raw);
        names.sort();
        assert_eq!(
            names,
            ["Content-Type", "Date", "From", "MIME-Version", "Message-ID", "Subject", "To"],
            "{raw}"
        );
        assert!(!raw.to_ascii_lowercase().contains("\r\nbcc:"), "{raw}");
        assert!(raw.contains("Message-ID: <0123456789abcdef.0@ztlake>"), "{raw}");
        // Updates thread under the first message.
        let mut update = notification(MessageKind::Update);
        update.revision = 2;
        let raw = String::from_utf8(compose(&update, &from).expect("c").formatted()).expect("a");
        assert!(raw.contains("In-Reply-To: <0123456789abcdef.0@ztlake>"), "{raw}");
        assert!(raw.contains("Message-ID: <0123456789abcdef.2@ztlake>"), "{raw}");
        // Bad recipient addresses are refused, not sent.
        let mut bad = notification(MessageKind::New);
        bad.recipients = vec!["x\r\nBcc: a@example.com".into()];
        assert!(compose(&bad, &from).is_err());
    }

    #[tokio::test]
    async fn without_smtp_messages_land_in_the_outbox_under_stable_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::config::OncallConfig::default();
        config.targets.push(crate::config::TargetConfig {
            name: "netsec".into(),
            email: vec!["netsec@example.com".into()],
            webhooks: vec![],
            escalate_to: None,
            quiet_hours: None,
            rate_limit: None,
        });
        let ctx = BuildContext { config: &config, outbox: dir.path() };
        let notifiers = build(&ctx).expect("build");
        let email = notifiers.first().expect("email notifier");
        let n = notification(MessageKind::New);
        let detail = email.send(&n).await.expect("send");
        assert!(detail.contains("0123456789abcdef.0.eml"), "{detail}");
        email.send(&n).await.expect("again");
        let files: Vec<_> = std::fs::read_dir(mail_dir(dir.path()))
            .expect("mail dir")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(files.len(), 1, "a retry overwrites: {files:?}");
        let raw = std::fs::read_to_string(mail_dir(dir.path()).join("0123456789abcdef.0.eml"))
            .expect("eml");
        assert!(raw.contains("Subject: [ztlake] HIGH"), "{raw}");
        assert!(raw.contains("Content-Type: multipart/alternative"), "{raw}");
        assert!(raw.contains("Content-Transfer-Encoding: quoted-printable"), "{raw}");
    }
}
