//! [`ConnectionSettings`]: how to reach the database, TLS included, in one place, so the
//! pool and any dedicated connection are made alike.
//!
//! The URL is read the way libpq reads it: a `postgres://` URL or a key-value string,
//! with `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`; default
//! `prefer`) and `sslrootcert` (a PEM file, or `system`). tokio-postgres knows only the
//! first three modes and no `sslrootcert`, so both are taken out of the string here and
//! the rest is handed to `tokio_postgres::Config`.

use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Manager;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresSetupError;
use crate::wire_error::{echo, BoxError};

/// The TLS stream of a connection that negotiated TLS. One connector serves every
/// sslmode, so this is the stream type whatever the URL says.
pub(crate) type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// The `application_name` the server sees unless the URL names one.
const APPLICATION_NAME: &str = "biot-notifications";

/// What PostgreSQL's ALPN protocol is called: PostgreSQL 17 requires it with
/// `sslnegotiation=direct`, and servers before 17 ignore it.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Everything needed to open a connection: the driver's configuration and the TLS
/// connector the URL's `sslmode` and `sslrootcert` (or the options' roots) call for.
#[derive(Clone)]
pub(crate) struct ConnectionSettings {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// Whether the URL set `application_name` (then it is never replaced).
    url_names_application: bool,
}

impl ConnectionSettings {
    /// Reads `url` (a `postgres://` URL or a libpq key-value string) with its `sslmode`
    /// and `sslrootcert`; `roots` are PEM root certificates given in code instead of
    /// `sslrootcert`. Root files are read here, and the system's store when needed.
    ///
    /// Sets `application_name` to `biot-notifications` unless the URL sets one.
    pub(crate) fn from_url(url: &str, roots: Option<&[u8]>) -> Result<Self, PostgresSetupError> {
        let (driver_url, tls_parameters) = split_tls_parameters(url)?;
        let mut config = tokio_postgres::Config::from_str(&driver_url).map_err(|source| {
            PostgresSetupError::InvalidUrl {
                source: source.into(),
            }
        })?;
        let (mode, root_source) = tls_parameters.plan(roots)?;
        config.ssl_mode(mode.driver_mode());
        let url_names_application = config.get_application_name().is_some();
        if !url_names_application {
            config.application_name(APPLICATION_NAME);
        }
        let tls = MakeRustlsConnect::new(client_config(mode.verification(root_source)?)?);
        Ok(ConnectionSettings {
            config,
            tls,
            url_names_application,
        })
    }

    /// Names the connections `name` unless the URL names them.
    pub(crate) fn default_application_name(&mut self, name: &str) {
        if !self.url_names_application {
            self.config.application_name(name);
        }
    }

    /// Bounds connecting by `timeout` unless the URL sets `connect_timeout`.
    pub(crate) fn default_connect_timeout(&mut self, timeout: Duration) {
        if self.config.get_connect_timeout().is_none() {
            self.config.connect_timeout(timeout);
        }
    }

    /// A deadpool manager that opens the pool's connections with these settings.
    pub(crate) fn manager(&self) -> Manager {
        Manager::new(self.config.clone(), self.tls.clone())
    }

    /// One dedicated connection, outside any pool: the client and the connection that
    /// drives it, for the caller to poll (with `Connection::poll_message`, to receive
    /// `LISTEN` notifications) or spawn.
    pub(crate) async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, TlsStream>), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

/// libpq's sslmode values, minus `allow` (plain first, TLS on refusal), which
/// tokio-postgres cannot do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, PostgresSetupError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(PostgresSetupError::InvalidSslMode {
                    value: shown_sslmode(value),
                })
            }
        })
    }

    /// What tokio-postgres is told: whether to ask for TLS and whether it is required.
    /// Which certificates are accepted is the connector's business.
    fn driver_mode(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }

    /// How the server's certificate is checked in this mode, with roots from `source`
    /// (read here).
    fn verification(self, source: RootSource<'_>) -> Result<Verification, PostgresSetupError> {
        Ok(match (self, source) {
            // Never used: tokio-postgres does not call the connector. Nothing is read.
            (SslMode::Disable, _) => Verification::AnyCertificate,
            (SslMode::Prefer | SslMode::Require, RootSource::Absent) => {
                Verification::AnyCertificate
            }
            // libpq: with a root file, prefer and require check the chain like verify-ca.
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, source) => {
                Verification::Chain(source.load()?)
            }
            (SslMode::VerifyFull, source) => Verification::ChainAndName(source.load()?),
        })
    }
}

/// The sslmode as shown in an error: only when it looks like a mode name, since a
/// malformed URL could put anything there.
fn shown_sslmode(value: &str) -> String {
    let word = value.len() <= 24
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if word {
        value.to_owned()
    } else {
        "(not shown)".to_owned()
    }
}

/// Where the root certificates come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RootSource<'a> {
    /// None named: the system's store where one is needed (verify-ca, verify-full).
    Absent,
    /// `sslrootcert=system`: the operating system's store.
    System,
    /// `sslrootcert=<path>`: a PEM file.
    File(&'a str),
    /// PEM given in code ([`PostgresOptions::tls_root_certificates`]).
    ///
    /// [`PostgresOptions::tls_root_certificates`]: super::PostgresOptions::tls_root_certificates
    Given(&'a [u8]),
}

impl<'a> RootSource<'a> {
    fn choose(
        sslrootcert: Option<&'a str>,
        given: Option<&'a [u8]>,
    ) -> Result<Self, PostgresSetupError> {
        match (sslrootcert, given) {
            (Some(_), Some(_)) => Err(PostgresSetupError::InvalidTlsSettings {
                reason: "root certificates are given both in the URL (`sslrootcert`) and in \
                         the options: give them in one place",
            }),
            (Some(""), None) => Err(PostgresSetupError::InvalidTlsSettings {
                reason: "`sslrootcert` is empty",
            }),
            (Some("system"), None) => Ok(RootSource::System),
            (Some(path), None) => Ok(RootSource::File(path)),
            (None, Some(pem)) => Ok(RootSource::Given(pem)),
            (None, None) => Ok(RootSource::Absent),
        }
    }

    fn load(self) -> Result<RootCertStore, PostgresSetupError> {
        match self {
            RootSource::Absent | RootSource::System => system_roots(),
            RootSource::File(path) => {
                let origin = || format!("the file `{}`", echo(path));
                let pem = std::fs::read(path).map_err(|source| {
                    PostgresSetupError::TlsRootCertificates {
                        origin: origin(),
                        source: source.into(),
                    }
                })?;
                pem_roots(&pem).map_err(|source| PostgresSetupError::TlsRootCertificates {
                    origin: origin(),
                    source,
                })
            }
            RootSource::Given(pem) => {
                pem_roots(pem).map_err(|source| PostgresSetupError::TlsRootCertificates {
                    origin: "the options (`tls_root_certificates`)".to_owned(),
                    source,
                })
            }
        }
    }
}

/// Every certificate in `pem`, each one a root; at least one.
fn pem_roots(pem: &[u8]) -> Result<RootCertStore, BoxError> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        roots.add(certificate?)?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate (`-----BEGIN CERTIFICATE-----`) in it".into());
    }
    Ok(roots)
}

/// The operating system's roots, read now (so a CA added to the host counts).
fn system_roots() -> Result<RootCertStore, PostgresSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // A system bundle often holds a few certificates webpki cannot use: skipped, as
    // libpq's OpenSSL skips them.
    let (_usable, unusable) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let source: BoxError = match found.errors.into_iter().next() {
            Some(error) => error.into(),
            None => "no usable root certificate found".into(),
        };
        return Err(PostgresSetupError::TlsRootCertificates {
            origin: "the system's store".to_owned(),
            source,
        });
    }
    if unusable > 0 || !found.errors.is_empty() {
        tracing::debug!(
            unusable,
            errors = found.errors.len(),
            "some of the system's root certificates were skipped"
        );
    }
    Ok(roots)
}

/// How the server's certificate is checked.
enum Verification {
    /// Not at all (the handshake's signatures still are): libpq's prefer and require
    /// without a root file.
    AnyCertificate,
    /// The chain up to one of the roots, not the name: verify-ca.
    Chain(RootCertStore),
    /// The chain and the host name: verify-full.
    ChainAndName(RootCertStore),
}

/// A rustls client configuration on ring that checks certificates as `verification` says.
fn client_config(verification: Verification) -> Result<ClientConfig, PostgresSetupError> {
    let tls_setup = |source: TlsError| PostgresSetupError::Tls {
        source: source.into(),
    };
    // The provider is named rather than taken from the process default, which would
    // be ambiguous (and panic) in a host whose dependencies turn on aws-lc-rs too.
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_setup)?;
    let webpki = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|source| PostgresSetupError::Tls {
                source: source.into(),
            })
    };
    let mut config = match verification {
        Verification::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Verification::Chain(roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly {
                inner: webpki(roots)?,
            }))
            .with_no_client_auth(),
        Verification::ChainAndName(roots) => builder
            .with_webpki_verifier(webpki(roots)?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(config)
}

/// verify-ca: webpki's checks, except that a certificate for another name is accepted.
/// webpki checks the name last, after the chain, so a name error means the chain is good.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// prefer and require without roots: any certificate, as libpq. The handshake's
/// signatures are still checked against the certificate's key, so the session is with
/// whoever holds that key (which, unchecked, may be anyone).
#[derive(Debug)]
struct AnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS parameters taken out of a URL (the last one wins when repeated, as in libpq).
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParameters {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl TlsParameters {
    /// The sslmode and where its roots come from, by libpq's rules; `given` are the
    /// options' roots.
    fn plan<'a>(
        &'a self,
        given: Option<&'a [u8]>,
    ) -> Result<(SslMode, RootSource<'a>), PostgresSetupError> {
        let mode = self.sslmode.as_deref().map(SslMode::parse).transpose()?;
        let root_source = RootSource::choose(self.sslrootcert.as_deref(), given)?;
        let mode = mode.unwrap_or(match root_source {
            // libpq: system roots make verify-full the default.
            RootSource::System => SslMode::VerifyFull,
            _ => SslMode::Prefer,
        });
        if root_source == RootSource::System && mode != SslMode::VerifyFull {
            // libpq refuses this too: anyone can get a publicly trusted certificate for
            // a name they own, so the system's roots mean something only with the name.
            return Err(PostgresSetupError::InvalidTlsSettings {
                reason: "`sslrootcert=system` needs `sslmode=verify-full`",
            });
        }
        Ok((mode, root_source))
    }

    /// Keeps `value` if `key` is one of ours; says whether it was.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => return false,
        }
        true
    }
}

/// `url` without `sslmode` and `sslrootcert`, and their values. Both forms are split
/// with tokio-postgres's own grammar, so the rest reads to it as it would have.
fn split_tls_parameters(url: &str) -> Result<(String, TlsParameters), PostgresSetupError> {
    let invalid = |source: BoxError| PostgresSetupError::InvalidUrl { source };
    match ["postgres://", "postgresql://"]
        .iter()
        .find(|prefix| url.starts_with(*prefix))
    {
        Some(prefix) => split_url(url, prefix.len()).map_err(invalid),
        None => split_key_value(url).map_err(invalid),
    }
}

/// The URL form: parameters are the `&`-separated `key=value` pairs after the first `?`
/// past the credentials (which tokio-postgres ends at the first `@`), percent-encoded.
fn split_url(url: &str, prefix_len: usize) -> Result<(String, TlsParameters), BoxError> {
    let mut parameters = TlsParameters::default();
    let after_prefix = &url[prefix_len..];
    let credentials_end = after_prefix.find('@').map_or(0, |at| at + 1);
    let Some(question) = after_prefix[credentials_end..].find('?') else {
        return Ok((url.to_owned(), parameters));
    };
    let query_start = prefix_len + credentials_end + question;
    let mut kept = Vec::new();
    for pair in url[query_start + 1..].split('&') {
        let ours = match pair.split_once('=') {
            Some((key, value)) => parameters.take(&percent_decoded(key)?, percent_decoded(value)?),
            // Malformed: left for tokio-postgres to refuse.
            None => false,
        };
        if !ours && !pair.is_empty() {
            kept.push(pair);
        }
    }
    let mut driver_url = url[..query_start].to_owned();
    if !kept.is_empty() {
        driver_url.push('?');
        driver_url.push_str(&kept.join("&"));
    }
    Ok((driver_url, parameters))
}

fn percent_decoded(text: &str) -> Result<String, BoxError> {
    Ok(percent_encoding::percent_decode_str(text)
        .decode_utf8()?
        .into_owned())
}

/// The key-value form: `sslmode` and `sslrootcert` pairs are blanked out of the text,
/// everything else is left as written.
fn split_key_value(text: &str) -> Result<(String, TlsParameters), BoxError> {
    let mut parameters = TlsParameters::default();
    let mut driver_text = String::with_capacity(text.len());
    let mut copied = 0;
    for pair in key_value_pairs(text)? {
        if parameters.take(pair.key, pair.value) {
            driver_text.push_str(&text[copied..pair.span.start]);
            driver_text.push(' ');
            copied = pair.span.end;
        }
    }
    driver_text.push_str(&text[copied..]);
    Ok((driver_text, parameters))
}

/// One `key = value` of a key-value string, where it is and its unescaped value.
#[derive(Debug)]
struct KeyValuePair<'a> {
    span: Range<usize>,
    key: &'a str,
    value: String,
}

/// The pairs of a libpq key-value string, by tokio-postgres's grammar: `key = value`
/// with optional blanks around `=`; a value is either `'quoted'` or runs to the next
/// blank; `\` escapes the next character in both. Like tokio-postgres, stops at a
/// pair with no key.
fn key_value_pairs(text: &str) -> Result<Vec<KeyValuePair<'_>>, BoxError> {
    let mut pairs = Vec::new();
    let mut chars = text.char_indices().peekable();
    let position = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        chars.peek().map_or(text.len(), |&(at, _)| at)
    };
    let skip_blanks = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_blanks(&mut chars);
        let start = position(&mut chars);
        while chars
            .next_if(|&(_, c)| !c.is_whitespace() && c != '=')
            .is_some()
        {}
        let key = &text[start..position(&mut chars)];
        if key.is_empty() {
            return Ok(pairs);
        }
        skip_blanks(&mut chars);
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            return Err("a connection parameter has no `=`".into());
        }
        skip_blanks(&mut chars);
        let mut value = String::new();
        if chars.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                    None => return Err("a quoted connection parameter value is not closed".into()),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|&(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err("a connection parameter has no value".into());
            }
        }
        let end = position(&mut chars);
        pairs.push(KeyValuePair {
            span: start..end,
            key,
            value,
        });
    }
}

#[cfg(test)]
mod tests;
