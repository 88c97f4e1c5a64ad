//! [`PostgresOptions`]: how to build a store, which schema names it accepts, and
//! [`PostgresSetupError`], why building one failed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Runtime};

use super::connection::ConnectionSettings;
use super::{Inner, PostgresStore, Statements, DEFAULT_OPERATION_TIMEOUT, DEFAULT_SCHEMA};
use crate::store::StoreError;
use crate::wire_error::{echo, BoxError};

/// The longest schema name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_NAME_LEN: usize = 63;

/// How to build a [`PostgresStore`]: start from [`PostgresStore::options`], finish
/// with [`connect`](Self::connect) or [`with_pool`](Self::with_pool).
///
/// ```no_run
/// # async fn run() -> Result<(), biot_notifications::store::postgres::PostgresSetupError> {
/// use std::time::Duration;
/// use biot_notifications::store::postgres::PostgresStore;
///
/// let store = PostgresStore::options()
///     .schema("dispatcher")
///     .operation_timeout(Duration::from_secs(2))
///     .max_connections(16)
///     .connect("postgres://dispatcher@db.internal/biot")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    schema: String,
    operation_timeout: Duration,
    max_connections: Option<usize>,
    tls_root_certificates: Option<RootCertificatesPem>,
}

/// PEM text given to [`PostgresOptions::tls_root_certificates`], kept as given (read at
/// connect) and shown in `Debug` by its size only.
#[derive(Clone)]
struct RootCertificatesPem(Arc<[u8]>);

impl fmt::Debug for RootCertificatesPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootCertificatesPem({} bytes)", self.0.len())
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresOptions {
    /// The defaults: schema [`DEFAULT_SCHEMA`], [`DEFAULT_OPERATION_TIMEOUT`], and
    /// deadpool's default pool size (four connections per CPU).
    pub fn new() -> Self {
        PostgresOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_connections: None,
            tls_root_certificates: None,
        }
    }

    /// The schema the tables live in, created if absent: 1 to 63 lower-case ASCII
    /// letters, digits and `_`, not starting with a digit. Stores on different schemas
    /// of one database are independent (tests use one schema each).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How long one operation (waiting for a connection included) may take before it
    /// fails with [`StoreError::Backend`]. Also bounds connecting and migrating.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The most connections the pool [`connect`](Self::connect) builds may hold; zero
    /// is refused there. (A pool passed to [`with_pool`](Self::with_pool) keeps its own
    /// size.)
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// The roots a TLS server certificate must chain to, as PEM text (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks, e.g. the contents of a provider's CA
    /// bundle): what `sslrootcert=<file>` gives in the URL, given in code instead. A URL
    /// that names `sslrootcert` too is refused. Read and checked at
    /// [`connect`](Self::connect).
    ///
    /// As in libpq, given roots make `sslmode=prefer` (the default) and `require` check
    /// the chain too; `verify-full` is what also checks the host name. See the
    /// [module docs](super#runtime-and-tls).
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(RootCertificatesPem(pem.into().into()));
        self
    }

    /// The settings a connection to `url` is made with, by the pool and by anything
    /// else that needs a connection of its own: the URL's TLS parameters, these
    /// options' roots, and connecting bounded by the operation timeout unless the URL
    /// sets `connect_timeout`.
    pub(crate) fn connection_settings(
        &self,
        url: &str,
    ) -> Result<ConnectionSettings, PostgresSetupError> {
        let roots = self.tls_root_certificates.as_ref().map(|pem| &*pem.0);
        let mut settings = ConnectionSettings::from_url(url, roots)?;
        settings.default_connect_timeout(self.operation_timeout);
        Ok(settings)
    }

    /// Builds a pool for the database at `url` (a `postgres://` URL or a libpq
    /// key-value string, with libpq's `sslmode` and `sslrootcert`: see the
    /// [module docs](super#runtime-and-tls)), then as [`with_pool`](Self::with_pool).
    ///
    /// Connecting, waiting for a connection and checking one out of the pool are each
    /// bounded by the operation timeout.
    ///
    /// # Errors
    /// [`PostgresSetupError::InvalidUrl`] when the URL is invalid,
    /// [`PostgresSetupError::InvalidSslMode`], [`PostgresSetupError::InvalidTlsSettings`],
    /// [`PostgresSetupError::TlsRootCertificates`] or [`PostgresSetupError::Tls`] when
    /// its TLS settings cannot be used,
    /// [`PostgresSetupError::Pool`] when no pool can be built from it,
    /// [`PostgresSetupError::Zero`] for a zero `max_connections` or `operation_timeout`,
    /// or as [`with_pool`](Self::with_pool).
    pub async fn connect(self, url: &str) -> Result<PostgresStore, PostgresSetupError> {
        if self.max_connections == Some(0) {
            return Err(PostgresSetupError::Zero {
                option: "max_connections",
            });
        }
        self.check_operation_timeout()?;
        let settings = self.connection_settings(url)?;
        let limit = Some(self.operation_timeout);
        let mut builder = Pool::builder(settings.manager())
            .runtime(Runtime::Tokio1)
            .wait_timeout(limit)
            .create_timeout(limit)
            .recycle_timeout(limit);
        if let Some(max) = self.max_connections {
            builder = builder.max_size(max);
        }
        let pool = builder.build().map_err(|source| PostgresSetupError::Pool {
            source: source.into(),
        })?;
        self.with_pool(pool).await
    }

    /// A zero operation timeout would fail every operation: refused when the store is
    /// built, like the other builders' zero values.
    fn check_operation_timeout(&self) -> Result<(), PostgresSetupError> {
        if self.operation_timeout.is_zero() {
            return Err(PostgresSetupError::Zero {
                option: "operation_timeout",
            });
        }
        Ok(())
    }

    /// Uses `pool` and migrates the schema.
    ///
    /// # Errors
    /// [`PostgresSetupError::Zero`] for a zero `operation_timeout`;
    /// [`PostgresSetupError::InvalidSchemaName`] when the schema name is not acceptable;
    /// [`PostgresSetupError::Store`] when no connection can be had within the operation
    /// timeout, or the migration fails.
    pub async fn with_pool(self, pool: Pool) -> Result<PostgresStore, PostgresSetupError> {
        self.check_operation_timeout()?;
        if !is_schema_name(&self.schema) {
            return Err(PostgresSetupError::InvalidSchemaName {
                name: echo(&self.schema),
            });
        }
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool,
                sql: Statements::new(&self.schema),
                schema: self.schema,
                operation_timeout: self.operation_timeout,
            }),
        };
        store.within(store.migrate()).await?;
        Ok(store)
    }
}

/// Whether `name` is a schema name this store accepts (and so may put in SQL text).
fn is_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_SCHEMA_NAME_LEN
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `name` as a quoted SQL identifier; only ever called on names [`is_schema_name`] accepts.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Why a [`PostgresStore`] could not be set up: a configuration mistake, or a
/// database that cannot be reached or migrated.
///
/// The configuration mistakes have variants of their own, so they never read as a
/// failing database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresSetupError {
    /// The URL is neither a `postgres://` URL nor a libpq key-value string. The message
    /// does not repeat the URL (it may hold a password); the driver's error is the
    /// source.
    #[error("the database URL is not valid")]
    InvalidUrl {
        /// The driver's error.
        #[source]
        source: BoxError,
    },

    /// The URL's `sslmode` is not one of `disable`, `prefer`, `require`, `verify-ca`
    /// and `verify-full` (libpq's `allow` is not supported: tokio-postgres cannot retry
    /// with TLS after a plain attempt).
    #[error(
        "`{value}` is not a supported sslmode: use disable, prefer, require, verify-ca or \
         verify-full"
    )]
    InvalidSslMode {
        /// The value given, when it looks like a mode name; `(not shown)` otherwise.
        value: String,
    },

    /// The TLS settings contradict each other: `sslrootcert=system` with a mode weaker
    /// than `verify-full` (libpq refuses it too), root certificates both in the URL and
    /// in the options, or an empty `sslrootcert`.
    #[error("the TLS settings cannot be used: {reason}")]
    InvalidTlsSettings {
        /// What is wrong.
        reason: &'static str,
    },

    /// The root certificates cannot be loaded: the `sslrootcert` file cannot be read,
    /// the PEM text holds no usable certificate, or the system's store has none.
    #[error("the TLS root certificates from {origin} cannot be used")]
    TlsRootCertificates {
        /// Where they were to come from: the file (its path), the options, or the
        /// system's store.
        origin: String,
        /// Why not.
        #[source]
        source: BoxError,
    },

    /// The TLS client configuration cannot be built (rustls refused it).
    #[error("the TLS client cannot be set up")]
    Tls {
        /// rustls' error.
        #[source]
        source: BoxError,
    },

    /// No connection pool can be built from the URL and the options.
    #[error("no connection pool can be built for the database")]
    Pool {
        /// The pool's error.
        #[source]
        source: BoxError,
    },

    /// The schema name is not one the store accepts.
    #[error(
        "`{name}` is not a usable schema name: use 1 to {MAX_SCHEMA_NAME_LEN} lower-case ASCII \
         letters, digits and `_`, not starting with a digit"
    )]
    InvalidSchemaName {
        /// The name given (cut to a bounded prefix when long).
        name: String,
    },

    /// An option that must be greater than zero is zero.
    #[error("the PostgreSQL store option `{option}` must be greater than zero")]
    Zero {
        /// The option, as the builder method is named.
        option: &'static str,
    },

    /// The database could not be reached within the operation timeout, or the migration
    /// failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn zero_options_are_refused_before_anything_connects() {
        // An unreachable address: the checks must answer before any connection is tried.
        let url = "postgres://nobody@127.0.0.1:1/none";
        let err = PostgresOptions::new()
            .max_connections(0)
            .connect(url)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the PostgreSQL store option `max_connections` must be greater than zero"
        );
        let err = PostgresOptions::new()
            .operation_timeout(Duration::ZERO)
            .connect(url)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                PostgresSetupError::Zero {
                    option: "operation_timeout"
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn schema_names_are_plain_lower_case_identifiers() {
        for good in ["biot_notifications", "_x", "t_0123abc", &"a".repeat(63)] {
            assert!(is_schema_name(good), "{good}");
        }
        for bad in [
            "",
            "0abc",
            "Biot",
            "a-b",
            "a\"b",
            "a;b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_schema_name(bad), "{bad}");
        }
    }
}
