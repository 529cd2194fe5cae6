//! # scale0-connect
//!
//! How every scale0 process — the queue worker, the functions, the CLI — reaches
//! RabbitMQ and Redis: one place for TLS trust and for keeping credentials out of logs.
//!
//! - `amqps://` and `rediss://` verify the server's certificate (rustls) against the
//!   public roots (webpki) **plus** the CA certificates in the PEM file named by
//!   [`CA_BUNDLE_ENV`] (`SCALE0_CA_BUNDLE`), for brokers and caches behind a private
//!   CA. The file is read at each connect, so a rotated CA is picked up on reconnect.
//! - Errors name the endpoint with its password replaced ([`redact_url`]), and a
//!   certificate that does not verify says which trust it was checked against.
//!
//! rustls is built with two crypto providers in this workspace (ring for lapin,
//! aws-lc-rs for the AWS SDK), so it cannot pick one by itself and redis-rs's TLS
//! panics without a process default: [`Trust::from_env`] installs ring's once.
//!
//! lapin adds the bundle to its webpki roots itself; redis-rs replaces its roots with
//! the ones it is given, so [`redis_client`] gives it the public roots and the bundle
//! together: both clients trust the same set.

use std::time::Duration;

use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Names a PEM file of extra CA certificates to trust for `amqps://` and `rediss://`.
pub const CA_BUNDLE_ENV: &str = "SCALE0_CA_BUNDLE";

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `SCALE0_CA_BUNDLE` names a file that cannot be read or holds no certificate.
    #[error("{CA_BUNDLE_ENV}={path}: {reason}")]
    Bundle { path: String, reason: String },
    /// The URL does not parse.
    #[error("invalid URL {url}: {reason}")]
    Url { url: String, reason: String },
    /// The endpoint refused, did not answer, or did not verify.
    #[error("cannot connect to {endpoint}: {reason}{hint}")]
    Endpoint {
        endpoint: String,
        reason: String,
        hint: String,
    },
}

impl ConnectError {
    /// Whether trying again later may succeed (a server that is down may come back;
    /// a bad URL or CA file will not change by itself).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectError::Endpoint { .. })
    }

    fn endpoint(url: &str, error: impl std::fmt::Display, trust: &Trust) -> Self {
        let reason = redact_in(url, &error.to_string());
        let hint = if is_certificate_error(&reason) {
            match &trust.bundle {
                Some(b) => format!(
                    " (the server's certificate is signed by neither a CA in \
                     {CA_BUNDLE_ENV}={} nor a public root)",
                    b.path
                ),
                None => format!(
                    " (the server's certificate is not signed by a public root: set \
                     {CA_BUNDLE_ENV} to a PEM file of the CA that signed it)"
                ),
            }
        } else {
            String::new()
        };
        ConnectError::Endpoint {
            endpoint: redact_url(url),
            reason,
            hint,
        }
    }
}

fn is_certificate_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("certificate") || t.contains("unknownissuer") || t.contains("unknown issuer")
}

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// `text` with every occurrence of `url` redacted.
pub fn redact_in(url: &str, text: &str) -> String {
    let redacted = redact_url(url);
    if redacted == url {
        text.to_string()
    } else {
        text.replace(url, &redacted)
    }
}

/// The CA bundle's contents, checked to hold at least one certificate.
#[derive(Debug, Clone)]
struct Bundle {
    path: String,
    pem: String,
}

/// What TLS connections trust: the public roots, plus the bundle when one is set.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    bundle: Option<Bundle>,
}

impl Trust {
    /// The public roots plus the file named by `SCALE0_CA_BUNDLE`, when it is set.
    pub fn from_env() -> Result<Trust, ConnectError> {
        static PROVIDER: std::sync::Once = std::sync::Once::new();
        PROVIDER.call_once(|| {
            // Fails only when a provider is installed already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        match std::env::var_os(CA_BUNDLE_ENV) {
            Some(path) if !path.is_empty() => Trust::with_bundle(&path.to_string_lossy()),
            _ => Ok(Trust::default()),
        }
    }

    /// The public roots plus the CA certificates (PEM) in `path`.
    pub fn with_bundle(path: &str) -> Result<Trust, ConnectError> {
        let bad = |reason: String| ConnectError::Bundle {
            path: path.to_string(),
            reason,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not PEM: {e}")))?;
        if certificates.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        Ok(Trust {
            bundle: Some(Bundle {
                path: path.to_string(),
                pem,
            }),
        })
    }

    /// The public roots and the bundle as one PEM text, for redis-rs.
    fn roots_pem(&self, bundle: &Bundle) -> Vec<u8> {
        let mut pem = String::new();
        for root in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            let b64 = base64::engine::general_purpose::STANDARD.encode(root.as_ref());
            pem.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(&String::from_utf8_lossy(line));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
        }
        pem.push_str(&bundle.pem);
        pem.into_bytes()
    }
}

/// Connect to RabbitMQ at `url` (`amqp://` or `amqps://`), trusting the public roots
/// and `SCALE0_CA_BUNDLE`; fails within `timeout`.
pub async fn amqp(
    url: &str,
    properties: lapin::ConnectionProperties,
    timeout: Duration,
) -> Result<lapin::Connection, ConnectError> {
    let trust = Trust::from_env()?;
    amqp_with(url, properties, timeout, &trust).await
}

/// [`amqp`] with the trust given.
pub async fn amqp_with(
    url: &str,
    properties: lapin::ConnectionProperties,
    timeout: Duration,
    trust: &Trust,
) -> Result<lapin::Connection, ConnectError> {
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: trust.bundle.as_ref().map(|b| b.pem.clone()),
    };
    let builder = lapin::DefaultConnectionBuilder::new()
        .map_err(|e| ConnectError::endpoint(url, e, trust))?
        .with_uri_str(url.to_string())
        .with_properties(properties)
        .with_tls_config(tls);
    match tokio::time::timeout(timeout, builder.connect()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(ConnectError::endpoint(url, e, trust)),
        Err(_) => Err(ConnectError::endpoint(
            url,
            format!("no answer within {timeout:?}"),
            trust,
        )),
    }
}

/// A Redis client for `url` (`redis://` or `rediss://`), trusting the public roots and
/// `SCALE0_CA_BUNDLE`. Nothing connects yet; connection errors go through
/// [`endpoint_error`].
pub fn redis_client(url: &str) -> Result<(redis::Client, Trust), ConnectError> {
    let trust = Trust::from_env()?;
    let bad_url = |e: redis::RedisError| ConnectError::Url {
        url: redact_url(url),
        reason: redact_in(url, &e.to_string()),
    };
    let client = match &trust.bundle {
        Some(bundle) if url.starts_with("rediss://") => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(trust.roots_pem(bundle)),
            },
        ),
        _ => redis::Client::open(url),
    }
    .map_err(bad_url)?;
    Ok((client, trust))
}

/// A failure to reach `url`, named and redacted, with a hint when a certificate did
/// not verify.
pub fn endpoint_error(url: &str, error: impl std::fmt::Display, trust: &Trust) -> ConnectError {
    ConnectError::endpoint(url, error, trust)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:hunter2@cache:6380"),
            "rediss://app:***@cache:6380"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_in(
                "amqps://u:pw@h:5671/%2f",
                "cannot reach amqps://u:pw@h:5671/%2f"
            ),
            "cannot reach amqps://u:***@h:5671/%2f"
        );
    }

    #[test]
    fn a_bundle_without_certificates_is_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("scale0-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Trust::with_bundle(empty.to_str().unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("empty.pem: holds no PEM certificate"),
            "{e}"
        );
        assert!(!e.is_retryable());
        let e = Trust::with_bundle("/nonexistent/ca.pem").unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn the_public_roots_go_to_redis_as_pem() {
        let trust = Trust::default();
        let bundle = Bundle {
            path: "x".into(),
            pem: String::new(),
        };
        let pem = trust.roots_pem(&bundle);
        let parsed = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(parsed.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert_eq!(parsed[0], webpki_root_certs::TLS_SERVER_ROOT_CERTS[0]);
    }
}
