//! The [`EndpointPolicy`]: which endpoints a dispatcher accepts.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;
use url::Host;

use super::normalised::typed_host;
use super::{non_public_range, Endpoint, EndpointRejection, InvalidEndpoint};
use crate::wire_error::echo;

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
        // Kept sorted, so that two policies allowing the same hosts are equal.
        if let Err(at) = self.allowed_hosts.binary_search(&host) {
            self.allowed_hosts.insert(at, host);
        }
        self
    }

    /// Exempts a network from the address check, both for addresses written in endpoint
    /// URLs and for addresses host names resolve to at delivery.
    pub fn allow_network(mut self, net: IpNet) -> Self {
        let net = net.trunc();
        if let Err(at) = self.allowed_networks.binary_search(&net) {
            self.allowed_networks.insert(at, net);
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
    /// [`InvalidEndpoint`] echoing (a bounded prefix of) the input, with the
    /// [`EndpointRejection`] saying why.
    pub fn validate(&self, input: &str) -> Result<Endpoint, InvalidEndpoint> {
        Endpoint::parse(input)
            .and_then(|endpoint| self.check(&endpoint).map(|()| endpoint))
            .map_err(|reason| InvalidEndpoint::new(input, reason))
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
