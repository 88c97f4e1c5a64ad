//! Delivery over HTTP(S): [`HttpNotifier`], a [`Notifier`] built on `reqwest` with rustls.
//!
//! It sends exactly the request BioT sends ([`PreparedNotification::to_request`]) and
//! guards the network the dispatcher runs in:
//!
//! - The endpoint is checked against the [`EndpointPolicy`] before anything is sent.
//! - Host names are resolved by an [`AddressResolver`] (the system's by default) and
//!   every address is vetted with [`EndpointPolicy::check_address`]; the client connects
//!   only to addresses that pass. A name that passed the policy when it was subscribed
//!   cannot later be pointed at `127.0.0.1` or a cloud metadata service (DNS rebinding).
//! - Redirects are not followed (a `3xx` is a failed delivery): a plugin could otherwise
//!   bounce the request to an address the policy refuses.
//! - Proxies from the environment are ignored: a proxy resolves and connects on our
//!   behalf, out of reach of the address check.
//!
//! A request gets 10 seconds in all and 5 to connect unless [configured
//! otherwise](HttpNotifierBuilder); it is never retried (BioT does not retry either).
//!
//! ```no_run
//! use biot_notifications::notifier::http_notifier::HttpNotifier;
//! use biot_notifications::notifier::{DeliveryError, Notifier};
//! use biot_notifications::{Action, EndpointPolicy, EntityType, Event, EventType};
//! use serde_json::json;
//!
//! # async fn deliver() -> Result<(), Box<dyn std::error::Error>> {
//! let notifier = HttpNotifier::builder()
//!     .endpoint_policy(EndpointPolicy::default())
//!     .build()?;
//!
//! let endpoint = notifier.policy().validate("https://plugin.example.com/on-device")?;
//! let event = Event::new(
//!     EventType::new(EntityType::Device, Action::Create)?,
//!     json!({"_id": "dev-17", "_template": {"name": "bloodPressureCuff"}}),
//! );
//! match notifier.notify(&endpoint, &event.prepare(None)).await {
//!     Ok(()) => println!("delivered"),
//!     Err(DeliveryError::Status { status }) => println!("the plugin answered {status}"),
//!     Err(other) => println!("not delivered: {other}"),
//! }
//! # Ok(())
//! # }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

use crate::endpoint::{Endpoint, EndpointPolicy, EndpointRejection};
use crate::notification::PreparedNotification;
use crate::notifier::{DeliveryError, Notifier};
use crate::wire_error::BoxError;

/// Why an [`HttpNotifierBuilder`] could not build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpNotifierBuildError {
    /// A duration that must be longer than zero is zero.
    #[error("the HTTP notifier option `{option}` must be greater than zero")]
    Zero {
        /// The option, as the builder method is named.
        option: &'static str,
    },

    /// The HTTP client could not be set up (its TLS configuration failed to load); the
    /// client's error is the source.
    #[error("the HTTP notifier's client could not be set up")]
    Client {
        /// The client's own error (boxed: the HTTP client is not part of this API).
        #[source]
        source: BoxError,
    },
}

/// How long a delivery may take in all, unless configured otherwise: 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting (resolution, TCP and TLS handshakes) may take, unless configured
/// otherwise: 5 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `user-agent` every notification is sent with: `biot-notifications/<version>`.
pub const USER_AGENT: &str = concat!("biot-notifications/", env!("CARGO_PKG_VERSION"));

/// Turns a host name into the addresses it stands for.
///
/// [`HttpNotifier`] asks its resolver for every host name it delivers to and vets what
/// comes back with [`EndpointPolicy::check_address`], so a resolver needs no security
/// logic of its own. [`SystemResolver`] is the default; a host plugs in its own to use a
/// particular DNS client, to pin names, or in tests to map names to local receivers.
///
/// ```
/// use std::collections::HashMap;
/// use std::io;
/// use std::net::IpAddr;
///
/// use async_trait::async_trait;
/// use biot_notifications::notifier::http_notifier::AddressResolver;
///
/// /// Answers from a fixed table.
/// #[derive(Debug)]
/// struct StaticResolver(HashMap<String, Vec<IpAddr>>);
///
/// #[async_trait]
/// impl AddressResolver for StaticResolver {
///     async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
///         let host = host.strip_suffix('.').unwrap_or(host);
///         self.0.get(host).cloned().ok_or_else(|| {
///             io::Error::new(io::ErrorKind::NotFound, format!("no addresses for {host}"))
///         })
///     }
/// }
/// ```
#[async_trait]
pub trait AddressResolver: fmt::Debug + Send + Sync + 'static {
    /// The addresses `host` resolves to.
    ///
    /// `host` is a domain as written in the endpoint's URL (lower case, punycode, maybe
    /// with a trailing dot); IP address hosts are never resolved.
    ///
    /// # Errors
    /// When the name cannot be resolved; the delivery then fails with
    /// [`DeliveryError::Transport`].
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

macro_rules! forward_resolver {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: AddressResolver + ?Sized> AddressResolver for $pointer<T> {
            async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
                (**self).resolve(host).await
            }
        }
    )+};
}

forward_resolver!(Arc, Box);

/// The operating system's resolver (`getaddrinfo`, run on tokio's blocking pool).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

#[async_trait]
impl AddressResolver for SystemResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        // The port is a placeholder: the client puts the endpoint's port on each address.
        let addresses = tokio::net::lookup_host((host, 0)).await?;
        Ok(addresses.map(|address| address.ip()).collect())
    }
}

/// A [`Notifier`] that POSTs notifications over HTTP(S), with the endpoint policy
/// enforced on every address it connects to.
///
/// Cheap to clone (the connection pool is shared); build one and reuse it. Must be used
/// inside a tokio runtime. See the [module docs](self) for what it guards against.
#[derive(Clone)]
pub struct HttpNotifier {
    client: reqwest::Client,
    policy: Arc<EndpointPolicy>,
    timeout: Duration,
    connect_timeout: Duration,
    resolver: Arc<dyn AddressResolver>,
}

impl HttpNotifier {
    /// A notifier with the defaults: the strict [`EndpointPolicy::default`], the
    /// default timeouts and the system resolver.
    ///
    /// # Errors
    /// [`HttpNotifierBuildError::Client`] when the HTTP client cannot be set up (its
    /// TLS configuration failed to load).
    pub fn new() -> Result<HttpNotifier, HttpNotifierBuildError> {
        HttpNotifier::builder().build()
    }

    /// A builder, to choose the endpoint policy, the timeouts or the resolver.
    ///
    /// The policy is given here once: a [`Dispatcher`](crate::Dispatcher) built with
    /// this notifier validates subscriptions against the same policy
    /// ([`Notifier::endpoint_policy`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use biot_notifications::notifier::http_notifier::{HttpNotifier, HttpNotifierBuildError};
    /// use biot_notifications::EndpointPolicy;
    ///
    /// let notifier = HttpNotifier::builder()
    ///     .endpoint_policy(EndpointPolicy::default().allow_host("hooks.internal.example"))
    ///     .timeout(Duration::from_secs(3))
    ///     .connect_timeout(Duration::from_secs(1))
    ///     .build()?;
    /// assert_eq!(notifier.timeout(), Duration::from_secs(3));
    ///
    /// let err = HttpNotifier::builder().timeout(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err.to_string(), "the HTTP notifier option `timeout` must be greater than zero");
    /// # Ok::<(), HttpNotifierBuildError>(())
    /// ```
    pub fn builder() -> HttpNotifierBuilder {
        HttpNotifierBuilder {
            policy: EndpointPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            resolver: Arc::new(SystemResolver),
        }
    }

    /// The policy every endpoint and every resolved address is checked against.
    pub fn policy(&self) -> &EndpointPolicy {
        &self.policy
    }

    /// How long a delivery may take in all.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long connecting may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}

impl fmt::Debug for HttpNotifier {
    // The client's own Debug lists every setting reqwest has; these are the ones we chose.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpNotifier")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Notifier for HttpNotifier {
    /// Checks `endpoint` against the policy, then POSTs the notification once.
    ///
    /// # Errors
    /// - [`DeliveryError::Refused`] when the policy refuses the endpoint, or every
    ///   address its host resolves to (nothing is sent then);
    /// - [`DeliveryError::Status`] when the plugin answers anything but `2xx`, a
    ///   redirect included; [`DeliveryError::Throttled`] for a `429` or `503` with a
    ///   `Retry-After` (in seconds or as an HTTP-date);
    /// - [`DeliveryError::Timeout`] when connecting or the whole exchange takes too long;
    /// - [`DeliveryError::Transport`] for everything else (resolution, connection, TLS).
    async fn notify(
        &self,
        endpoint: &Endpoint,
        notification: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        // An IP address host is never resolved, so this is its only check; a name is
        // checked here for its form and again, per address, when it is resolved.
        self.policy
            .check(endpoint)
            .map_err(|reason| DeliveryError::Refused { reason })?;
        let request = reqwest::Request::try_from(notification.to_request(endpoint))
            .map_err(DeliveryError::transport)?;
        let response = self.client.execute(request).await.map_err(delivery_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| retry_after(value, SystemTime::now()));
        // The plugin's answer is ignored (as BioT ignores it), so the body is never read.
        // A short body arrives with the headers and the connection stays reusable
        // (tests/http_notifier.rs); a longer one is not drained: dropping the response
        // closes the connection rather than wait on an unbounded body.
        drop(response);
        if status.is_success() {
            Ok(())
        } else if let Some(retry_after) = retry_after {
            Err(DeliveryError::with_retry_after(status, retry_after))
        } else {
            Err(DeliveryError::Status { status })
        }
    }

    fn endpoint_policy(&self) -> Option<&EndpointPolicy> {
        Some(&self.policy)
    }
}

/// Configures an [`HttpNotifier`]; made by [`HttpNotifier::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HttpNotifierBuilder {
    policy: EndpointPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    resolver: Arc<dyn AddressResolver>,
}

impl HttpNotifierBuilder {
    /// Which endpoints, and which addresses their hosts resolve to, deliveries may go to
    /// (default: [`EndpointPolicy::default`], strict). A dispatcher built with the
    /// notifier validates subscriptions against the same policy.
    pub fn endpoint_policy(mut self, policy: EndpointPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long a delivery may take in all, from connecting to the response's status
    /// (default [`DEFAULT_TIMEOUT`]); longer than zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take, resolution and TLS handshake included (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]); longer than zero.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Resolves host names with `resolver` instead of [`SystemResolver`]. Whatever it
    /// answers is still vetted by the policy.
    pub fn resolver(mut self, resolver: impl AddressResolver) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Checks the options and builds the notifier.
    ///
    /// # Errors
    /// [`HttpNotifierBuildError::Zero`] for a zero timeout;
    /// [`HttpNotifierBuildError::Client`] when the HTTP client cannot be set up (its TLS
    /// configuration failed to load).
    pub fn build(self) -> Result<HttpNotifier, HttpNotifierBuildError> {
        for (option, value) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(HttpNotifierBuildError::Zero { option });
            }
        }
        let policy = Arc::new(self.policy);
        let vetting = VettingResolver {
            policy: Arc::clone(&policy),
            resolver: Arc::clone(&self.resolver),
        };
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(vetting))
            .build()
            .map_err(|source| HttpNotifierBuildError::Client {
                source: source.into(),
            })?;
        Ok(HttpNotifier {
            client,
            policy,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            resolver: self.resolver,
        })
    }
}

/// The client's resolver: asks the configured [`AddressResolver`], keeps only the
/// addresses the policy accepts. The client connects to nothing else.
struct VettingResolver {
    policy: Arc<EndpointPolicy>,
    resolver: Arc<dyn AddressResolver>,
}

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let resolver = Arc::clone(&self.resolver);
        Box::pin(async move {
            let host = name.as_str();
            let resolved = resolver.resolve(host).await?;
            if resolved.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{host}` resolved to no address"),
                )
                .into());
            }
            let mut first_refusal = None;
            let mut vetted = Vec::with_capacity(resolved.len());
            for address in resolved {
                match policy.check_address(address) {
                    Ok(()) => vetted.push(address),
                    Err(reason) => {
                        first_refusal.get_or_insert(reason);
                    }
                }
            }
            if vetted.is_empty() {
                let reason = first_refusal.expect("an empty resolution was answered above");
                // Boxed as itself, not inside an `io::Error`, so that `delivery_error`
                // finds it by walking the error's sources.
                return Err(Box::new(AddressRefused {
                    host: host.to_owned(),
                    reason,
                }) as _);
            }
            // Port 0 means "the endpoint's port": the client fills it in.
            let addrs: Addrs = Box::new(
                vetted
                    .into_iter()
                    .map(|address| SocketAddr::new(address, 0)),
            );
            Ok(addrs)
        })
    }
}

/// Every address a host resolved to was refused by the policy.
#[derive(Debug, thiserror::Error)]
#[error("every address `{host}` resolved to is refused: {reason}")]
struct AddressRefused {
    host: String,
    reason: EndpointRejection,
}

/// The wait a `Retry-After` value asks for, from `now`: delay-seconds or an HTTP-date
/// (a date in the past means "now"). `None` when it is neither.
fn retry_after(value: &reqwest::header::HeaderValue, now: SystemTime) -> Option<Duration> {
    let value = value.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Sorts a client error into the delivery outcome it means.
fn delivery_error(error: reqwest::Error) -> DeliveryError {
    // The refusal sits several layers down (client, connector, resolver).
    let mut cause: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<AddressRefused>() {
            return DeliveryError::Refused {
                reason: refused.reason.clone(),
            };
        }
        cause = current.source();
    }
    if error.is_timeout() {
        DeliveryError::Timeout
    } else {
        DeliveryError::transport(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<HttpNotifier>();
        assert_send_sync::<HttpNotifierBuilder>();
        assert_send_sync::<SystemResolver>();
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        use reqwest::header::HeaderValue;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 06 Nov 1994 08:49:37 GMT
        let read = |value: &str| retry_after(&HeaderValue::from_str(value).unwrap(), now);
        assert_eq!(read("120"), Some(Duration::from_secs(120)));
        assert_eq!(read(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            read("Sun, 06 Nov 1994 08:49:40 GMT"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(read("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(read("soon"), None);
        assert_eq!(read("-5"), None);
    }

    #[test]
    fn user_agent_names_the_crate_and_its_version() {
        assert_eq!(
            USER_AGENT,
            format!("biot-notifications/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
