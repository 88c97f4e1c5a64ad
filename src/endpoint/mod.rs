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

mod normalised;
mod policy;
mod range;
mod rejection;

pub use normalised::Endpoint;
pub use policy::EndpointPolicy;
pub use range::{non_public_range, AddressRange};
pub use rejection::{EndpointRejection, InvalidEndpoint};

/// The longest endpoint accepted, in bytes, both as given and once normalised.
pub const MAX_ENDPOINT_LEN: usize = 2048;
