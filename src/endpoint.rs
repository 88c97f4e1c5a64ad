//! Plugin endpoints: which URLs a subscription may point at.
//!
//! An [`Endpoint`] is a structurally valid, normalised `http`/`https` URL: it has a host,
//! no credentials and no fragment, and two spellings of one URL compare equal. Whether a
//! dispatcher accepts it is a separate question, answered by an [`EndpointPolicy`]: by
//! default only `https` URLs whose host is a public address or a fully qualified domain
//! name, because a dispatcher that POSTs wherever it is told is a server-side request
//! forgery waiting to happen.
//!
//! Address checks run on the URL as the `url` crate normalises it, so numeric spellings
//! of an address (`https://2130706433/`, `https://0x7f.1/`) cannot slip past them. Host
//! names are checked again at delivery: a transport resolves the name and hands every
//! address to [`EndpointPolicy::check_address`], which defeats DNS rebinding.
//!
//! ```
//! use biot_notifications::{Endpoint, EndpointPolicy, EndpointRejection};
//!
//! let endpoint = Endpoint::parse("https://Plugins.Example.com:443/biot")?;
//! assert_eq!(endpoint.as_str(), "https://plugins.example.com/biot");
//!
//! let policy = EndpointPolicy::new();
//! policy.check(&endpoint)?;
//!
//! // Loopback in disguise: refused by default, fine for local development.
//! let sneaky = Endpoint::parse("https://0x7f.1/")?;
//! assert_eq!(sneaky.as_str(), "https://127.0.0.1/");
//! assert_eq!(policy.check(&sneaky).unwrap_err().reason_code(), "non_public_address");
//! assert!(EndpointPolicy::local_development().check(&sneaky).is_ok());
//! # Ok::<(), EndpointRejection>(())
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use url::{Host, Url};

use crate::error::{echo, Error};

/// The longest endpoint accepted, in bytes, both as given and once normalised.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// A validated, normalised plugin endpoint URL.
///
/// Built only by [`Endpoint::parse`] (also behind [`FromStr`], [`TryFrom`] and
/// [`Deserialize`]), which applies the structural rules every endpoint must meet,
/// whatever the policy:
///
/// - at most [`MAX_ENDPOINT_LEN`] bytes, no whitespace and no control characters;
/// - an absolute URL with the scheme `http` or `https` and a host, which, if it is a
///   name, uses only ASCII letters, digits, `-`, `_` and `.` (IDNs as punycode);
/// - no user-info (`user:pass@`, not even an empty `@`) and no fragment (not even `#`).
///
/// The endpoint keeps the URL in the form the `url` crate serialises it: scheme and host
/// lower-cased, IDN hosts in punycode, numeric IPv4 spellings canonicalised, the default
/// port dropped and an empty path written as `/`. Equality, ordering and hashing are on
/// that form, so `https://EXAMPLE.com:443/hook` and `https://example.com/hook` are one
/// endpoint.
///
/// Whether a dispatcher accepts the endpoint (scheme, address) is up to its
/// [`EndpointPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    // Only the string: there is one endpoint per subscription, and a parsed `Url` would
    // add some seventy bytes of offsets to each, for nothing the hot path needs.
    normalised: Box<str>,
}

impl Endpoint {
    /// Checks the structural rules and normalises `input`; no address policy is applied.
    ///
    /// Unsubscribing and reading stored subscriptions use this directly; subscribing goes
    /// through [`EndpointPolicy::validate`].
    ///
    /// ```
    /// use biot_notifications::Endpoint;
    ///
    /// let endpoint = Endpoint::parse("HTTPS://Bücher.Example/hook?x=1")?;
    /// assert_eq!(endpoint.as_str(), "https://xn--bcher-kva.example/hook?x=1");
    ///
    /// let rejected = Endpoint::parse("https://user:secret@example.com/").unwrap_err();
    /// assert_eq!(rejected.reason_code(), "credentials");
    /// # Ok::<(), biot_notifications::EndpointRejection>(())
    /// ```
    pub fn parse(input: &str) -> Result<Endpoint, EndpointRejection> {
        // Before parsing: the parser's work grows with the input.
        if input.len() > MAX_ENDPOINT_LEN {
            return Err(EndpointRejection::TooLong {
                length: input.len(),
                max: MAX_ENDPOINT_LEN,
            });
        }
        // The parser silently trims and drops these; a URL that only works once something
        // has been cut out of it is a mistake or a trick, either way not an endpoint.
        // Visible ASCII, the usual URL, has neither: only otherwise look at each char.
        // Plain characters (see below) are visible ASCII, and the usual URL is plain.
        let plain_input = is_plain_uri(input);
        if !plain_input && !input.bytes().all(|b| b.is_ascii_graphic()) {
            if let Some((index, character)) = input
                .char_indices()
                .find(|(_, c)| c.is_whitespace() || c.is_control())
            {
                return Err(EndpointRejection::InvalidCharacter { character, index });
            }
        }

        let url = Url::parse(input).map_err(|error| EndpointRejection::NotAUrl {
            reason: error.to_string(),
        })?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(EndpointRejection::UnsupportedScheme {
                    scheme: echo(other),
                })
            }
        }
        // The parser drops an empty user-info (`https://@host/`), so look at the input too
        // (`@` is not a plain character).
        if !url.username().is_empty()
            || url.password().is_some()
            || (!plain_input && has_user_info(input))
        {
            return Err(EndpointRejection::Credentials);
        }
        match url.host() {
            None => return Err(EndpointRejection::MissingHost),
            // The URL standard lets through hosts no DNS name can have (`ex{a}mple.com`,
            // `a"b.com`), which HTTP libraries then refuse at delivery time.
            Some(Host::Domain(domain)) if !is_host_name(domain) => {
                return Err(EndpointRejection::InvalidHost { host: echo(domain) })
            }
            Some(_) => {}
        }
        if url.fragment().is_some() {
            return Err(EndpointRejection::Fragment);
        }

        let normalised = String::from(url);
        // Percent-encoding and punycode can make the normalised form longer than the input.
        if normalised.len() > MAX_ENDPOINT_LEN {
            return Err(EndpointRejection::TooLong {
                length: normalised.len(),
                max: MAX_ENDPOINT_LEN,
            });
        }
        // `url()` re-parses and the store compares normalised strings: both rely on the
        // normalised form parsing back to itself, so make sure rather than assume. An input
        // that already is its normalised form (the usual case) was just parsed into
        // itself: parsing it again would prove nothing new, and doubled the cost.
        let unchanged = normalised == input;
        if !unchanged && !Url::parse(&normalised).is_ok_and(|again| again.as_str() == normalised) {
            return Err(EndpointRejection::NotAUrl {
                reason: "it does not have a stable normalised form".to_owned(),
            });
        }
        // Delivery builds an `http::Request` to this URL; checking here lets rendering a
        // request be infallible. Asking `http` costs two allocations and an eighth of a
        // subscribe, so a URL made only of characters every URI parser takes anywhere is
        // let through without asking: its shape is the URL parser's own serialisation.
        let plain = if unchanged {
            plain_input
        } else {
            is_plain_uri(&normalised)
        };
        if !plain && http::Uri::try_from(normalised.as_str()).is_err() {
            return Err(EndpointRejection::NotAUrl {
                reason: "it is not a valid HTTP request target".to_owned(),
            });
        }
        Ok(Endpoint {
            normalised: normalised.into_boxed_str(),
        })
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    /// The normalised URL, parsed, e.g. for building a request.
    pub fn url(&self) -> Url {
        Url::parse(&self.normalised)
            .expect("an endpoint's normalised form was checked to parse when it was built")
    }

    /// The scheme: `"http"` or `"https"`.
    pub fn scheme(&self) -> &str {
        if self.normalised.starts_with("https:") {
            "https"
        } else {
            "http"
        }
    }

    /// The host as written in the normalised URL: a lower-case (punycode) domain, a
    /// dotted-quad IPv4 address, or an IPv6 address in brackets (`[::1]`).
    pub fn host_str(&self) -> &str {
        // The normalised form is `http://` or `https://`, then the host, then `:`, `/`,
        // `?` or the end: the scheme was checked, user-info refused, and the URL parser
        // always writes the `//`. Byte searches: the policy check runs this for every
        // subscription, where `str` pattern searchers cost more than the rest.
        let after_scheme = if self.normalised.starts_with("https://") {
            &self.normalised["https://".len()..]
        } else {
            &self.normalised["http://".len()..]
        };
        let bytes = after_scheme.as_bytes();
        let end = if bytes.first() == Some(&b'[') {
            bytes
                .iter()
                .position(|&b| b == b']')
                .map_or(bytes.len(), |i| i + 1)
        } else {
            bytes
                .iter()
                .position(|&b| matches!(b, b':' | b'/' | b'?'))
                .unwrap_or(bytes.len())
        };
        &after_scheme[..end]
    }

    /// The host, typed: a domain name or an IP address.
    ///
    /// A transport resolves a [`Host::Domain`] and vets each address with
    /// [`EndpointPolicy::check_address`]; an address host needs no resolution.
    pub fn host(&self) -> Host<&str> {
        typed_host(self.host_str())
    }

    /// The endpoint as an HTTP request URI.
    pub fn to_uri(&self) -> http::Uri {
        // `parse` checked that the normalised form is a valid request target.
        http::Uri::try_from(self.as_str()).expect("a validated endpoint is a valid URI")
    }

    /// The normalised URL, as an owned string.
    pub fn into_string(self) -> String {
        self.normalised.into_string()
    }
}

/// A host as [`Endpoint::host_str`] writes it, typed.
fn typed_host(host: &str) -> Host<&str> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if let Ok(address) = inner.parse::<Ipv6Addr>() {
            return Host::Ipv6(address);
        }
    }
    // The URL standard reads any host ending in a number as IPv4 and serialises it as
    // a dotted quad, so a domain can never look like one.
    match host.parse::<Ipv4Addr>() {
        Ok(address) => Host::Ipv4(address),
        Err(_) => Host::Domain(host),
    }
}

/// Whether a parsed (lower-cased, punycoded) domain is shaped like a DNS host name: only
/// letters, digits, `-` and `_` (which some services use), in non-empty labels separated
/// by single dots, with at most one trailing dot (the fully qualified form).
///
/// Empty labels matter: `localhost..` or `intranet..` would otherwise dodge the checks
/// on localhost and single-label names, and no DNS name can have one.
fn is_host_name(domain: &str) -> bool {
    let labels = domain.strip_suffix('.').unwrap_or(domain);
    // One pass over the bytes (this runs on every subscribe), counting the current
    // label's length so that a dot can tell an empty label.
    let mut label_len = 0;
    for &b in labels.as_bytes() {
        if b == b'.' {
            if label_len == 0 {
                return false;
            }
            label_len = 0;
        } else if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            label_len += 1;
        } else {
            return false;
        }
    }
    label_len > 0
}

/// Whether `url` is made only of RFC 3986's unreserved and sub-delims characters, `:`,
/// `/`, `?` and `%`: characters that a URI parser takes in a host (the domain ones, which
/// [`is_host_name`] checked), a port, a path and a query alike. What else the URL parser
/// writes (`[` of an IPv6 host, `|`, `^`, `{` and the like in a path or query) is left
/// to `http` to judge.
fn is_plain_uri(url: &str) -> bool {
    const PLAIN: [bool; 256] = {
        let mut plain = [false; 256];
        let mut byte = 0;
        while byte < 256 {
            plain[byte] = matches!(
                byte as u8,
                b'a'..=b'z'
                    | b'A'..=b'Z'
                    | b'0'..=b'9'
                    | b'-' | b'.' | b'_' | b'~'
                    | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
                    | b':' | b'/' | b'?' | b'%'
            );
            byte += 1;
        }
        plain
    };
    // No early exit: the usual URL is plain throughout, and a loop without branches
    // runs several bytes at a time.
    url.bytes()
        .fold(true, |plain, b| plain & PLAIN[usize::from(b)])
}

/// Whether the authority of a `http(s)` URL as typed contains `@`, as the URL standard
/// delimits it for special schemes: after the scheme and any run of `/` or `\`, up to the
/// next `/`, `\`, `?` or `#`.
fn has_user_info(input: &str) -> bool {
    // Bytes, not chars: every delimiter is ASCII, and no byte of a multi-byte UTF-8
    // character is.
    let input = input.as_bytes();
    let Some(colon) = input.iter().position(|&b| b == b':') else {
        return false;
    };
    input[colon + 1..]
        .iter()
        .skip_while(|&&b| matches!(b, b'/' | b'\\'))
        .take_while(|&&b| !matches!(b, b'/' | b'\\' | b'?' | b'#'))
        .any(|&b| b == b'@')
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalised)
    }
}

impl AsRef<str> for Endpoint {
    fn as_ref(&self) -> &str {
        &self.normalised
    }
}

/// Lets maps keyed by [`Endpoint`] be looked up with a normalised `&str`.
impl Borrow<str> for Endpoint {
    fn borrow(&self) -> &str {
        &self.normalised
    }
}

impl FromStr for Endpoint {
    type Err = EndpointRejection;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(input)
    }
}

impl TryFrom<&str> for Endpoint {
    type Error = EndpointRejection;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        Endpoint::parse(input)
    }
}

impl TryFrom<String> for Endpoint {
    type Error = EndpointRejection;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        Endpoint::parse(&input)
    }
}

impl From<Endpoint> for String {
    fn from(endpoint: Endpoint) -> String {
        endpoint.into_string()
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.normalised)
    }
}

/// Deserialises through [`Endpoint::parse`]: the structural rules hold for stored
/// endpoints too, but no policy is applied, so tightening a policy never makes stored
/// subscriptions unreadable.
impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EndpointVisitor;

        impl de::Visitor<'_> for EndpointVisitor {
            type Value = Endpoint;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an http or https URL")
            }

            fn visit_str<E: de::Error>(self, input: &str) -> Result<Endpoint, E> {
                Endpoint::parse(input).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(EndpointVisitor)
    }
}

/// Which endpoints a dispatcher accepts.
///
/// The default ([`EndpointPolicy::new`]) is strict: `https` only, and the host must be a
/// fully qualified domain name or a public address. [`local_development`] loosens both;
/// [`allow_host`] and [`allow_network`] make narrow exceptions to a strict policy.
/// Structural rules (no credentials, no fragment, only `http`/`https`, the length limit)
/// hold under every policy.
///
/// ```
/// use biot_notifications::EndpointPolicy;
///
/// let policy = EndpointPolicy::new()
///     .allow_host("hooks.internal.example")
///     .allow_network("10.20.0.0/16".parse().expect("a valid CIDR"));
///
/// assert!(policy.validate("https://hooks.internal.example/notify").is_ok());
/// assert!(policy.validate("https://10.20.3.4/notify").is_ok());
/// assert!(policy.validate("https://10.30.3.4/notify").is_err());
/// assert!(policy.validate("http://hooks.internal.example/notify").is_err());
/// ```
///
/// [`local_development`]: EndpointPolicy::local_development
/// [`allow_host`]: EndpointPolicy::allow_host
/// [`allow_network`]: EndpointPolicy::allow_network
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPolicy {
    allow_http: bool,
    allow_non_public: bool,
    /// Kept in the form [`Endpoint::host_str`] has, without a trailing dot.
    allowed_hosts: Vec<String>,
    allowed_networks: Vec<IpNet>,
}

impl EndpointPolicy {
    /// The strict policy: `https` only, public addresses and fully qualified names only.
    pub fn new() -> Self {
        EndpointPolicy {
            allow_http: false,
            allow_non_public: false,
            allowed_hosts: Vec::new(),
            allowed_networks: Vec::new(),
        }
    }

    /// A permissive policy for development: plain `http`, `localhost`, single-label names
    /// and private or loopback addresses are all accepted.
    ///
    /// The structural rules still hold. Not for production: it lets anyone who may
    /// subscribe make the dispatcher POST to internal services.
    pub fn local_development() -> Self {
        EndpointPolicy::new()
            .allow_http(true)
            .allow_non_public(true)
    }

    /// Whether plain `http` endpoints are accepted (default: no).
    pub fn allow_http(mut self, yes: bool) -> Self {
        self.allow_http = yes;
        self
    }

    /// Whether hosts that are not public are accepted (default: no): localhost names,
    /// single-label names and addresses for which [`non_public_range`] names a range.
    pub fn allow_non_public(mut self, yes: bool) -> Self {
        self.allow_non_public = yes;
        self
    }

    /// Exempts one host from the name and address checks (not from the scheme check).
    ///
    /// The match is exact, ignoring case and a trailing dot: allowing `example.com` does
    /// not allow `api.example.com`. An IDN or an IP address may be given in any spelling
    /// the URL standard accepts. Addresses the host resolves to are still checked at
    /// delivery unless they fall in an [allowed network](EndpointPolicy::allow_network).
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        let host = host.into();
        let host = host.strip_suffix('.').unwrap_or(&host);
        // Normalise like the URL parser does, so the comparison is with `host_str`.
        let host = match host.parse::<Ipv6Addr>() {
            Ok(address) => Host::<&str>::Ipv6(address).to_string(),
            Err(_) => Host::parse(host)
                .map_or_else(|_| host.to_ascii_lowercase(), |parsed| parsed.to_string()),
        };
        let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
        if !self.allowed_hosts.contains(&host) {
            self.allowed_hosts.push(host);
        }
        self
    }

    /// Exempts a network from the address check, both for addresses written in endpoint
    /// URLs and for addresses host names resolve to at delivery.
    pub fn allow_network(mut self, net: IpNet) -> Self {
        let net = net.trunc();
        if !self.allowed_networks.contains(&net) {
            self.allowed_networks.push(net);
        }
        self
    }

    /// Whether plain `http` endpoints are accepted.
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// Whether hosts that are not public are accepted.
    pub fn allows_non_public(&self) -> bool {
        self.allow_non_public
    }

    /// Parses `input` and checks it against this policy: what a subscription goes through.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEndpoint`] echoing (a bounded prefix of) the input, with the
    /// [`EndpointRejection`] saying why.
    pub fn validate(&self, input: &str) -> Result<Endpoint, Error> {
        Endpoint::parse(input)
            .and_then(|endpoint| self.check(&endpoint).map(|()| endpoint))
            .map_err(|reason| Error::invalid_endpoint(input, reason))
    }

    /// Checks an already-parsed endpoint against this policy.
    ///
    /// In order: the scheme must be `https` unless [`allows_http`](Self::allows_http);
    /// then, unless the host is [allowed](Self::allow_host) or the policy
    /// [`allows_non_public`](Self::allows_non_public), a domain must be neither a
    /// `localhost` name nor a single label, and an address host must pass
    /// [`check_address`](Self::check_address).
    ///
    /// A domain passing here is not the end of it: what it resolves to is only known at
    /// delivery, where the transport must call [`check_address`](Self::check_address).
    pub fn check(&self, endpoint: &Endpoint) -> Result<(), EndpointRejection> {
        if endpoint.scheme() != "https" && !self.allow_http {
            return Err(EndpointRejection::InsecureScheme);
        }
        let host = endpoint.host_str();
        let bare_host = host.strip_suffix('.').unwrap_or(host);
        if self
            .allowed_hosts
            .iter()
            .any(|allowed| allowed == bare_host)
        {
            return Ok(());
        }
        match typed_host(host) {
            Host::Ipv4(address) => self.check_address(IpAddr::V4(address)),
            Host::Ipv6(address) => self.check_address(IpAddr::V6(address)),
            Host::Domain(_) if self.allow_non_public => Ok(()),
            Host::Domain(_) if bare_host == "localhost" || bare_host.ends_with(".localhost") => {
                Err(EndpointRejection::LocalhostName { host: echo(host) })
            }
            Host::Domain(_) if !bare_host.contains('.') => {
                Err(EndpointRejection::NotFullyQualified { host: echo(host) })
            }
            Host::Domain(_) => Ok(()),
        }
    }

    /// Vets one address: one written in an endpoint, or one a host name resolved to at
    /// delivery time. Transports call this for every resolved address before connecting,
    /// so a name that passed [`check`](Self::check) cannot later point inside the
    /// network (DNS rebinding).
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use biot_notifications::{AddressRange, EndpointPolicy, EndpointRejection};
    ///
    /// let policy = EndpointPolicy::new();
    /// let resolved: IpAddr = "169.254.169.254".parse().expect("an address");
    /// assert_eq!(
    ///     policy.check_address(resolved),
    ///     Err(EndpointRejection::NonPublicAddress {
    ///         address: resolved,
    ///         range: AddressRange::CloudMetadata,
    ///     })
    /// );
    /// assert!(policy.check_address("8.8.8.8".parse().expect("an address")).is_ok());
    /// ```
    pub fn check_address(&self, address: IpAddr) -> Result<(), EndpointRejection> {
        if self.allow_non_public {
            return Ok(());
        }
        // `::ffff:10.0.0.1` is 10.0.0.1 on the wire; let an IPv4 allowance cover it.
        let unmapped = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed = self
            .allowed_networks
            .iter()
            .any(|net| net.contains(&address) || unmapped.is_some_and(|v4| net.contains(&v4)));
        match non_public_range(address) {
            Some(range) if !allowed => Err(EndpointRejection::NonPublicAddress { address, range }),
            _ => Ok(()),
        }
    }
}

impl Default for EndpointPolicy {
    /// The strict policy, as [`EndpointPolicy::new`].
    fn default() -> Self {
        EndpointPolicy::new()
    }
}

/// Why an endpoint was rejected.
///
/// Display messages are sentences for people; [`reason_code`](Self::reason_code) is a
/// stable identifier for machines.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointRejection {
    /// The endpoint is longer than [`MAX_ENDPOINT_LEN`], as given or once normalised.
    #[error("the endpoint is {length} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// The length in bytes.
        length: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// The endpoint contains whitespace or a control character.
    #[error(
        "the endpoint contains whitespace or a control character ({character:?} at byte {index})"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the input.
        index: usize,
    },

    /// The endpoint does not parse as an absolute URL.
    #[error("the endpoint is not an absolute URL: {reason}")]
    NotAUrl {
        /// What the URL parser objected to.
        reason: String,
    },

    /// The scheme is neither `http` nor `https`.
    #[error("the scheme `{scheme}` is not supported; endpoints must use https")]
    UnsupportedScheme {
        /// The scheme given, lower-cased (truncated when long).
        scheme: String,
    },

    /// The scheme is `http` and the policy requires `https`.
    #[error("plain http is not allowed; endpoints must use https")]
    InsecureScheme,

    /// The URL has no host.
    #[error("the endpoint has no host")]
    MissingHost,

    /// The URL carries user-info (`user:password@`), even an empty one.
    #[error("the endpoint must not contain credentials (user-info before `@` in the host part)")]
    Credentials,

    /// The host is a domain with characters no host name has (only ASCII letters, digits,
    /// `-`, `_` and `.` are accepted once an IDN is converted to punycode).
    #[error("`{host}` is not a valid host name")]
    InvalidHost {
        /// The host (truncated when long).
        host: String,
    },

    /// The URL has a fragment (`#...`), even an empty one.
    #[error("the endpoint must not have a fragment (`#...`)")]
    Fragment,

    /// The host is `localhost` or a name under `.localhost`.
    #[error("`{host}` is a localhost name, which is not allowed")]
    LocalhostName {
        /// The host (truncated when long).
        host: String,
    },

    /// The host is a single-label name such as `intranet`.
    #[error("`{host}` is not a fully qualified domain name")]
    NotFullyQualified {
        /// The host (truncated when long).
        host: String,
    },

    /// The host is, or resolved to, an address that is not public.
    #[error("{address} is {range}; only public addresses are allowed")]
    NonPublicAddress {
        /// The address.
        address: IpAddr,
        /// The non-public range it is in.
        range: AddressRange,
    },
}

impl EndpointRejection {
    /// A stable snake_case identifier for the reason, e.g. `"non_public_address"`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            EndpointRejection::TooLong { .. } => "too_long",
            EndpointRejection::InvalidCharacter { .. } => "invalid_character",
            EndpointRejection::NotAUrl { .. } => "not_a_url",
            EndpointRejection::UnsupportedScheme { .. } => "unsupported_scheme",
            EndpointRejection::InsecureScheme => "insecure_scheme",
            EndpointRejection::MissingHost => "missing_host",
            EndpointRejection::InvalidHost { .. } => "invalid_host",
            EndpointRejection::Credentials => "credentials",
            EndpointRejection::Fragment => "fragment",
            EndpointRejection::LocalhostName { .. } => "localhost_name",
            EndpointRejection::NotFullyQualified { .. } => "not_fully_qualified",
            EndpointRejection::NonPublicAddress { .. } => "non_public_address",
        }
    }
}

/// A range of addresses that is not public unicast, as [`non_public_range`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressRange {
    /// `0.0.0.0/8` ("this network") or `::`.
    Unspecified,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, or IPv6 site-local `fec0::/10`.
    Private,
    /// `100.64.0.0/10`, shared by carrier-grade NATs.
    SharedCgnat,
    /// `169.254.0.0/16` or `fe80::/10`.
    LinkLocal,
    /// A cloud provider's instance metadata service: `169.254.169.254`, AWS's
    /// `169.254.170.2` and `fd00:ec2::254`, Alibaba's `100.100.100.200`.
    CloudMetadata,
    /// `255.255.255.255`.
    Broadcast,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` or `2001:2::/48`.
    Benchmarking,
    /// Reserved or special-purpose space: `240.0.0.0/4`, `192.0.0.0/24`, `192.88.99.0/24`,
    /// the discard prefix `100::/64`, `2001::/23` (Teredo included), and IPv6 outside the
    /// global unicast `2000::/3`.
    Reserved,
    /// `fc00::/7`.
    UniqueLocal,
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressRange::Unspecified => "an unspecified (\"this network\") address",
            AddressRange::Loopback => "a loopback address",
            AddressRange::Private => "a private-use address",
            AddressRange::SharedCgnat => "a shared (carrier-grade NAT) address",
            AddressRange::LinkLocal => "a link-local address",
            AddressRange::CloudMetadata => "the cloud metadata service",
            AddressRange::Broadcast => "the broadcast address",
            AddressRange::Multicast => "a multicast address",
            AddressRange::Documentation => "an address reserved for documentation",
            AddressRange::Benchmarking => "an address reserved for benchmarking",
            AddressRange::Reserved => "a reserved address",
            AddressRange::UniqueLocal => "a unique-local address",
        })
    }
}

/// The public-address check: `None` if `address` is public unicast, otherwise the
/// non-public range it is in.
///
/// IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
/// `2002::/16`, Teredo `2001::/32`) are classified by the IPv4 address they reach, so
/// `::ffff:127.0.0.1` is loopback. Deprecated and local-use forms are never public.
///
/// ```
/// use biot_notifications::{non_public_range, AddressRange};
///
/// assert_eq!(non_public_range("8.8.8.8".parse().expect("an address")), None);
/// assert_eq!(
///     non_public_range("::ffff:10.1.2.3".parse().expect("an address")),
///     Some(AddressRange::Private)
/// );
/// ```
pub fn non_public_range(address: IpAddr) -> Option<AddressRange> {
    match address {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(address: Ipv4Addr) -> Option<AddressRange> {
    use AddressRange::*;
    // Specific addresses come before the ranges that contain them.
    let range = match address.octets() {
        [0, ..] => Unspecified,
        [127, ..] => Loopback,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Private,
        [100, 100, 100, 200] => CloudMetadata,
        [100, 64..=127, ..] => SharedCgnat,
        [169, 254, 169, 254] | [169, 254, 170, 2] => CloudMetadata,
        [169, 254, ..] => LinkLocal,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [198, 18..=19, ..] => Benchmarking,
        // IETF protocol assignments, and the retired 6to4 relay anycast.
        [192, 0, 0, _] | [192, 88, 99, _] => Reserved,
        [255, 255, 255, 255] => Broadcast,
        [224..=239, ..] => Multicast,
        [240..=255, ..] => Reserved,
        _ => return None,
    };
    Some(range)
}

/// Whether `bits` lies in the prefix `prefix/len` (`len` in 1..=128).
fn in_prefix(bits: u128, prefix: Ipv6Addr, len: u32) -> bool {
    (bits ^ prefix.to_bits())
        .checked_shr(128 - len)
        .unwrap_or(0)
        == 0
}

fn non_public_v6(address: Ipv6Addr) -> Option<AddressRange> {
    use AddressRange::*;
    const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

    let bits = address.to_bits();
    // Truncation intended: these pick the 32 bits an embedding puts the IPv4 address in.
    let low_v4 = Ipv4Addr::from(bits as u32);
    let six_to_four_v4 = Ipv4Addr::from((bits >> 80) as u32);
    let prefix =
        |[a, b, c]: [u16; 3], len| in_prefix(bits, Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0), len);

    let range = if address.is_unspecified() {
        Unspecified
    } else if address.is_loopback() {
        Loopback
    } else if let Some(v4) = address.to_ipv4_mapped() {
        return non_public_v4(v4);
    } else if bits >> 32 == 0 {
        // IPv4-compatible, deprecated since 2006: never public, whatever it embeds.
        non_public_v4(low_v4).unwrap_or(Reserved)
    } else if prefix([0x64, 0xff9b, 0], 96) {
        // The well-known NAT64 prefix reaches the embedded address, public or not.
        return non_public_v4(low_v4);
    } else if prefix([0x64, 0xff9b, 1], 48) {
        // 64:ff9b:1::/48 is for local use only.
        non_public_v4(low_v4).unwrap_or(Reserved)
    } else if prefix([0x100, 0, 0], 64) {
        Reserved
    } else if prefix([0x2001, 0, 0], 32) {
        // Teredo stores the client's IPv4 address inverted in the low 32 bits.
        non_public_v4(Ipv4Addr::from(!(bits as u32))).unwrap_or(Reserved)
    } else if prefix([0x2001, 2, 0], 48) {
        Benchmarking
    } else if prefix([0x2001, 0, 0], 23) {
        Reserved
    } else if prefix([0x2001, 0xdb8, 0], 32) || prefix([0x3fff, 0, 0], 20) {
        Documentation
    } else if prefix([0x2002, 0, 0], 16) {
        // 6to4 reaches the IPv4 address in bits 16..48.
        return non_public_v4(six_to_four_v4);
    } else if address == AWS_METADATA {
        CloudMetadata
    } else if prefix([0xfc00, 0, 0], 7) {
        UniqueLocal
    } else if prefix([0xfe80, 0, 0], 10) {
        LinkLocal
    } else if prefix([0xfec0, 0, 0], 10) {
        Private
    } else if prefix([0xff00, 0, 0], 8) {
        Multicast
    } else if !prefix([0x2000, 0, 0], 3) {
        // Only 2000::/3 is allocated for global unicast.
        Reserved
    } else {
        return None;
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().expect("a valid IPv6 address in the test")
    }

    /// `parse` skips asking `http` about URLs of plain characters only; every character,
    /// in every place an endpoint can hold it, shows that `http` would have agreed, and
    /// that whatever `parse` accepts, plain or not, `http` takes.
    #[test]
    fn every_accepted_character_makes_a_valid_request_target() {
        let mut characters: Vec<char> = (0x21..0x7f).map(char::from).collect();
        characters.extend(['é', 'ß', '\u{3000}', '\u{1f600}']);
        let (mut plain, mut asked) = (0, 0);
        for c in characters {
            for input in [
                format!("https://a{c}b.example.com/"),
                format!("https://example.com/a{c}b"),
                format!("https://example.com/{c}"),
                format!("https://example.com/p?a{c}b"),
                format!("https://example.com/p?{c}"),
                format!("https://example.com:8443/p?a=%{c}"),
            ] {
                let Ok(endpoint) = Endpoint::parse(&input) else {
                    continue;
                };
                let uri = http::Uri::try_from(endpoint.as_str());
                assert!(uri.is_ok(), "{input:?} -> {endpoint}");
                if is_plain_uri(endpoint.as_str()) {
                    plain += 1;
                } else {
                    asked += 1;
                }
            }
        }
        // Both ways through `parse` are taken, many times.
        assert!(plain > 400 && asked > 30, "{plain} plain, {asked} asked");
    }

    /// What `is_plain_uri` calls plain, spelled out, to catch a slip in its table.
    const PLAIN_SAMPLE: &str =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:/?%";

    #[test]
    fn plain_uri_characters_are_exactly_rfc_3986_s_unreserved_and_sub_delims_and_four_more() {
        for byte in 0..=u8::MAX {
            let one = [byte];
            let plain = std::str::from_utf8(&one).is_ok_and(is_plain_uri);
            assert_eq!(
                plain,
                PLAIN_SAMPLE.as_bytes().contains(&byte),
                "byte {byte:#04x}"
            );
        }
    }

    #[test]
    fn host_agrees_with_the_url_crate() {
        for input in [
            "https://example.com/",
            "https://example.com.:8443/x",
            "https://xn--bcher-kva.example/",
            "https://0x7f.1/",
            "https://[::ffff:127.0.0.1]:444/a?b",
            "http://[2001:db8::1]/",
            "https://8.8.8.8?q",
        ] {
            let endpoint = Endpoint::parse(input).expect("a valid endpoint in the test");
            let url = endpoint.url();
            assert_eq!(endpoint.host(), url.host().expect("a host"), "{input}");
            assert_eq!(Some(endpoint.host_str()), url.host_str(), "{input}");
            assert_eq!(endpoint.scheme(), url.scheme(), "{input}");
        }
    }

    #[test]
    fn embedded_ipv4_addresses_are_classified_by_what_they_reach() {
        let cases = [
            ("::ffff:8.8.8.8", None),
            ("::ffff:169.254.169.254", Some(AddressRange::CloudMetadata)),
            ("::8.8.8.8", Some(AddressRange::Reserved)),
            ("::10.0.0.1", Some(AddressRange::Private)),
            ("64:ff9b::808:808", None),
            ("64:ff9b::a00:1", Some(AddressRange::Private)),
            ("64:ff9b:1::808:808", Some(AddressRange::Reserved)),
            ("64:ff9b:1::7f00:1", Some(AddressRange::Loopback)),
            ("2002:808:808::1", None),
            ("2002:c0a8:101::1", Some(AddressRange::Private)),
            // Teredo client 127.0.0.1, inverted: 0x80ff_fffe.
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                Some(AddressRange::Loopback),
            ),
            (
                "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
                Some(AddressRange::Reserved),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(non_public_v6(v6(text)), expected, "{text}");
        }
    }

    #[test]
    fn ipv6_outside_global_unicast_is_reserved() {
        assert_eq!(non_public_v6(v6("4000::1")), Some(AddressRange::Reserved));
        assert_eq!(non_public_v6(v6("100::1")), Some(AddressRange::Reserved));
        assert_eq!(
            non_public_v6(v6("2001:2::1")),
            Some(AddressRange::Benchmarking)
        );
        assert_eq!(
            non_public_v6(v6("2001:1f0::1")),
            Some(AddressRange::Reserved)
        );
        assert_eq!(non_public_v6(v6("2001:200::1")), None);
        assert_eq!(
            non_public_v6(v6("3fff::1")),
            Some(AddressRange::Documentation)
        );
        assert_eq!(non_public_v6(v6("fec0::1")), Some(AddressRange::Private));
    }

    #[test]
    fn empty_user_info_is_seen_in_the_input() {
        assert!(has_user_info("https://@example.com/"));
        assert!(has_user_info("https:@example.com/"));
        assert!(has_user_info("https:\\\\@example.com/"));
        assert!(!has_user_info("https://example.com/@x"));
        assert!(!has_user_info("https://example.com\\@x"));
        assert!(!has_user_info("https://example.com?@x"));
        assert!(!has_user_info("https://example.com#@x"));
    }

    /// A tiny xorshift generator: deterministic, and no dependency for one test.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self, below: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % below as u64) as usize
        }
    }

    #[test]
    fn mangled_input_never_panics_and_normalisation_is_idempotent() {
        const SEEDS: [&str; 6] = [
            "https://user:pw@Example.COM:443/a/../b?c=d#e",
            "http://[::ffff:7f00:1]:80/",
            "https://0x7f.1/%2e%2E/",
            "HTTPS://bücher.example./x y",
            "https:\\\\exa%41mple.com\\@127.1",
            "https://a.b/\u{0}\u{7f}\u{200b}",
        ];
        const PIECES: [&str; 24] = [
            "@", ":", "/", "\\", "#", "?", "[", "]", "%", "%00", ".", "0x", "::", "ß", "\u{3000}",
            "xn--", "\"", "{", "}", "`", "|", "^", "<", "%7B",
        ];
        let strict = EndpointPolicy::new();
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut input: String = SEEDS[noise.next(SEEDS.len())].to_owned();
            for _ in 0..=noise.next(4) {
                let mut at = noise.next(input.len() + 1);
                while !input.is_char_boundary(at) {
                    at -= 1;
                }
                input.insert_str(at, PIECES[noise.next(PIECES.len())]);
            }
            if let Ok(endpoint) = Endpoint::parse(&input) {
                let again = Endpoint::parse(endpoint.as_str());
                assert_eq!(again.as_ref(), Ok(&endpoint), "{input:?}");
                assert_eq!(endpoint.url().as_str(), endpoint.as_str());
                // Every endpoint must be deliverable by an `http`-based transport.
                assert!(
                    http::Uri::try_from(endpoint.as_str()).is_ok(),
                    "{input:?} -> {endpoint}"
                );
                let _ = strict.check(&endpoint);
                let _ = endpoint.host();
                accepted += 1;
            }
        }
        // Proves the mangling leaves enough URLs standing to exercise the accepting path.
        assert!(accepted > 1_000, "only {accepted} mangled inputs parsed");
    }
}
