//! [`ApiBuilder`]: the HTTP surface's options, with their defaults, checked at `build`.

use std::sync::Arc;

use super::authorize::Authorization;
use super::{
    Api, Authorizer, Options, DEFAULT_BASE_PATH, DEFAULT_ENVIRONMENT, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_SERVICE_NAME,
};
use crate::dispatcher::Dispatcher;

/// Why an [`ApiBuilder`] could not build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiBuildError {
    /// No authorizer was chosen. There is no silent default: BioT refuses unauthenticated
    /// callers, and so must a dispatcher's API unless the host says otherwise.
    #[error(
        "the API needs an authorizer: call `.authorizer(..)` with the host's token check, \
         or `.authorizer(AllowEveryone)` to let anyone subscribe, unsubscribe and search \
         (local development and tests only)"
    )]
    NoAuthorizer,

    /// A count that must be at least 1 is zero.
    #[error("the API option `{option}` must be greater than zero")]
    Zero {
        /// The option, as the builder method is named.
        option: &'static str,
    },

    /// A value the API cannot use.
    #[error("the API option `{option}` is invalid: {reason}")]
    Invalid {
        /// The option, as the builder method is named.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Options for an [`Api`]; from [`Api::builder`]. Every value is checked by
/// [`build`](Self::build), and configuration ends there: an `Api` has no setters, so
/// its clones never differ.
///
/// An authorizer is required: [`authorizer`](Self::authorizer) with the host's token
/// check, or [`AllowEveryone`](super::AllowEveryone), named, for local development and
/// tests.
///
/// ```
/// use biot_notifications::api::{AllowEveryone, Api, ApiBuildError};
/// use biot_notifications::notifier::DiscardingNotifier;
/// use biot_notifications::{Dispatcher, InMemoryStore};
///
/// let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
/// let api = Api::builder(dispatcher.clone())
///     .authorizer(AllowEveryone) // a real service plugs in its token check here
///     .base_path("/notifications/") // served at /notifications/v1/hooks/...
///     .max_body_bytes(16 * 1024)
///     .service_name("notification-dispatcher")
///     .environment("staging")
///     .build()?;
/// assert_eq!(api.base_path(), "/notifications");
///
/// // No authorizer, no API.
/// let err = Api::builder(dispatcher).build().unwrap_err();
/// assert!(matches!(err, ApiBuildError::NoAuthorizer));
/// # Ok::<(), ApiBuildError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ApiBuilder {
    dispatcher: Dispatcher,
    authorization: Option<Authorization>,
    base_path: String,
    max_body_bytes: usize,
    service_name: String,
    environment: String,
}

impl ApiBuilder {
    pub(super) fn new(dispatcher: Dispatcher) -> Self {
        ApiBuilder {
            dispatcher,
            authorization: None,
            base_path: DEFAULT_BASE_PATH.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            environment: DEFAULT_ENVIRONMENT.to_owned(),
        }
    }

    /// Checks every subscription call with `authorizer` (the health check stays public).
    /// Required; [`AllowEveryone`](super::AllowEveryone) is the named choice to check
    /// nothing. An `Arc<dyn Authorizer>` is used as it is.
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorization = Some(Authorization::of(authorizer));
        self
    }

    /// Serves the routes under `base_path` instead of [`DEFAULT_BASE_PATH`].
    ///
    /// Trailing slashes are dropped and a missing leading slash is added, so
    /// `"dispatcher/"` is `"/dispatcher"`; `""` (or `"/"`) serves the routes at the root,
    /// as when a router strips the prefix itself. Paths match exactly, so the base path
    /// must be a plain URL path: no query, fragment, space, empty segment (`//`) or
    /// character a URL would escape.
    pub fn base_path(mut self, base_path: impl Into<String>) -> Self {
        self.base_path = base_path.into();
        self
    }

    /// Answers bodies longer than `max_body_bytes` with 413, reading no further
    /// (default [`DEFAULT_MAX_BODY_BYTES`]); at least 1.
    pub fn max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The `serviceName` put in error responses (default [`DEFAULT_SERVICE_NAME`]); not
    /// empty.
    pub fn service_name(mut self, service_name: impl Into<String>) -> Self {
        self.service_name = service_name.into();
        self
    }

    /// The `environment` put in error responses, e.g. `production` or `develop`
    /// (default [`DEFAULT_ENVIRONMENT`], empty).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// Checks the options and builds the API.
    ///
    /// # Errors
    /// [`ApiBuildError::NoAuthorizer`] when no authorizer was chosen;
    /// [`ApiBuildError::Zero`] for a `max_body_bytes` of 0; [`ApiBuildError::Invalid`]
    /// for a base path that is not a plain URL path or an empty service name.
    pub fn build(self) -> Result<Api, ApiBuildError> {
        let authorization = self.authorization.ok_or(ApiBuildError::NoAuthorizer)?;
        if self.max_body_bytes == 0 {
            return Err(ApiBuildError::Zero {
                option: "max_body_bytes",
            });
        }
        if self.service_name.trim().is_empty() {
            return Err(ApiBuildError::Invalid {
                option: "service_name",
                reason: "it must not be empty".to_owned(),
            });
        }
        let base_path = normalised_base_path(&self.base_path)?;
        Ok(Api {
            inner: Arc::new(Options {
                dispatcher: self.dispatcher,
                base_path,
                max_body_bytes: self.max_body_bytes,
                service_name: self.service_name,
                environment: self.environment,
                authorization,
            }),
        })
    }
}

/// `base_path` without trailing slashes and with a leading one, or why it cannot be
/// matched against request paths.
fn normalised_base_path(base_path: &str) -> Result<String, ApiBuildError> {
    let invalid = |reason: String| ApiBuildError::Invalid {
        option: "base_path",
        reason,
    };
    // What RFC 3986 allows in a path unescaped, and `%` for escapes.
    let is_path_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b);
    if let Some(bad) = base_path
        .chars()
        .find(|&c| !c.is_ascii() || !is_path_byte(c as u8))
    {
        return Err(invalid(format!(
            "{:?} may not contain {bad:?}: give a plain URL path such as \"/dispatcher\"",
            crate::wire_error::echo(base_path)
        )));
    }
    let trimmed = base_path.trim_end_matches('/');
    if trimmed.contains("//") {
        return Err(invalid(format!(
            "{:?} has an empty segment (`//`)",
            crate::wire_error::echo(base_path)
        )));
    }
    Ok(if trimmed.is_empty() || trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalised() {
        let base = |path: &str| normalised_base_path(path).unwrap();
        assert_eq!(base("/dispatcher/"), "/dispatcher");
        assert_eq!(base("dispatcher"), "/dispatcher");
        assert_eq!(base("/"), "");
        assert_eq!(base(""), "");
        assert_eq!(base("/a/b//"), "/a/b");
    }
}
