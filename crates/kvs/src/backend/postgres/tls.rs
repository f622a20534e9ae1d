//! TLS for the PostgreSQL backend: rustls, when the URL asks for it.
//!
//! The URL's `sslmode` says whether to encrypt, as with libpq, but kvs
//! always verifies what it encrypts to:
//!
//! - `disable`, `prefer` or none: plain TCP (kvs does not try TLS first
//!   and fall back, which would encrypt to an unverified server);
//! - `require` and `verify-full`: TLS or no connection, the server's
//!   certificate checked against `sslrootcert` (a PEM file of CA
//!   certificates) or, without one, the Mozilla roots, and the host name
//!   against the certificate. (libpq's `require` checks nothing unless it
//!   has a root certificate; kvs does not connect to an unverified
//!   server.)
//! - `verify-ca` (the chain without the host name) is refused: say
//!   `verify-full`.
//!
//! Both parameters are taken out of the URL here, since the client
//! library knows neither `verify-full` nor `sslrootcert`.

use crate::{Error, Result};
use percent_encoding::percent_decode_str;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsRequest {
    /// TLS, verified, or plain TCP.
    pub verified: bool,
    /// The CA certificates' PEM file, if given.
    pub root_cert: Option<String>,
}

impl TlsRequest {
    /// The mode for the client library: it only needs to know whether TLS
    /// is required.
    pub fn ssl_mode(&self) -> SslMode {
        if self.verified {
            SslMode::Require
        } else {
            SslMode::Disable
        }
    }

    /// The rustls connector, for a verified connection.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>> {
        if !self.verified {
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::config(format!(
                        "postgres: sslrootcert {path:?} cannot be read: {e}"
                    ))
                })?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        Error::config(format!("postgres: sslrootcert {path:?} is not PEM: {e}"))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::config(format!(
                            "postgres: sslrootcert {path:?} holds a bad certificate: {e}"
                        ))
                    })?;
                }
                if roots.is_empty() {
                    return Err(Error::config(format!(
                        "postgres: sslrootcert {path:?} holds no certificate"
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        // Named, not the process default, which a program may not have set.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("postgres: TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

/// `url` without `sslmode` and `sslrootcert`, and what they asked for.
/// A connection string in libpq's `key=value` form is passed on as it is,
/// but may not ask for TLS: say that in the URL form.
pub(super) fn split(url: &str) -> Result<(String, TlsRequest)> {
    let mut request = TlsRequest {
        verified: false,
        root_cert: None,
    };
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_url {
        if url.contains("sslmode") || url.contains("sslrootcert") {
            return Err(Error::config(
                "postgres: say sslmode and sslrootcert in a postgres:// URL, not in key=value form",
            ));
        }
        return Ok((url.to_owned(), request));
    }
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), request));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(raw).decode_utf8_lossy().into_owned();
        match name {
            "sslmode" => {
                request.verified = match value.as_str() {
                    "disable" | "prefer" | "allow" => false,
                    "require" | "verify-full" => true,
                    "verify-ca" => return Err(Error::config(
                        "postgres: sslmode=verify-ca is not supported (kvs checks the host name \
                             too): use sslmode=verify-full",
                    )),
                    other => {
                        return Err(Error::config(format!(
                            "postgres: sslmode={other:?} is not one of disable, prefer, require, \
                             verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" => request.root_cert = Some(value),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_taken_out_of_the_url() {
        let (url, tls) =
            split("postgres://a@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fca.pem")
                .unwrap();
        assert_eq!(url, "postgres://a@h/db?application_name=x");
        assert!(tls.verified);
        assert_eq!(tls.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(tls.ssl_mode(), SslMode::Require);
        let (url, tls) = split("postgres://a@h/db?sslmode=prefer").unwrap();
        assert_eq!((url.as_str(), tls.verified), ("postgres://a@h/db", false));
        assert!(!split("postgres://a@h/db").unwrap().1.verified);
    }

    #[test]
    fn bad_tls_parameters_are_one_line_errors() {
        for (url, needle) in [
            ("postgres://h/db?sslmode=verify-ca", "verify-full"),
            ("postgres://h/db?sslmode=always", "\"always\""),
            ("host=h sslmode=require", "postgres:// URL"),
        ] {
            let e = split(url).unwrap_err().to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{url}: {e}");
        }
        let missing = TlsRequest {
            verified: true,
            root_cert: Some("/nonexistent/ca.pem".into()),
        };
        let e = missing.connector().err().expect("an error").to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
