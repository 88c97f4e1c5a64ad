//! Why an endpoint was rejected: [`EndpointRejection`], and [`InvalidEndpoint`], the
//! endpoint layer's error that carries it with the input.

use std::net::IpAddr;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::AddressRange;
use crate::wire_error::{details_object, echo, BiotError};

// Named in the docs only.
#[cfg(doc)]
use super::MAX_ENDPOINT_LEN;

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

/// An endpoint that was refused, with the input echoed: the endpoint layer's error.
///
/// Answered `400` with code `INVALID_ENDPOINT` and details `{"invalidEndpoint",
/// "reason"}`; the input is cut to a bounded prefix, so a hostile request cannot make
/// the error larger than the request.
///
/// ```
/// use biot_notifications::{BiotError, EndpointPolicy, EndpointRejection};
///
/// let err = EndpointPolicy::default().validate("http://plugin.example.com/").unwrap_err();
/// assert_eq!(err.input(), "http://plugin.example.com/");
/// assert!(matches!(err.reason(), EndpointRejection::InsecureScheme));
/// assert_eq!(err.code(), "INVALID_ENDPOINT");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not an acceptable endpoint: {reason}")]
pub struct InvalidEndpoint {
    input: String,
    reason: EndpointRejection,
}

impl InvalidEndpoint {
    /// `input` refused for `reason`; only a bounded prefix of `input` is kept.
    pub fn new(input: &str, reason: EndpointRejection) -> Self {
        InvalidEndpoint {
            input: echo(input),
            reason,
        }
    }

    /// The refused input (cut to a bounded prefix when long).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was refused.
    pub fn reason(&self) -> &EndpointRejection {
        &self.reason
    }
}

impl BiotError for InvalidEndpoint {
    fn code(&self) -> &'static str {
        "INVALID_ENDPOINT"
    }

    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn details(&self) -> Map<String, Value> {
        details_object(json!({
            "invalidEndpoint": self.input,
            "reason": self.reason.to_string(),
        }))
    }
}
