//! The W3C trace context a notification carries: [`TraceParent`].

use std::fmt;
use std::str::FromStr;

use http::header::HeaderValue;
use uuid::Uuid;

use crate::subscription::ValidationError;

/// A W3C trace context (`traceparent`): which trace a request belongs to, and which
/// call made it.
///
/// Parsed per the [W3C Trace Context](https://www.w3.org/TR/trace-context/#traceparent-header)
/// rules: lower-case hex only, ids that are not all zero, version `ff` refused, version
/// `00` exactly 55 characters. A later version is read as the specification asks (its
/// first four fields, the sampled flag only) and written back as version `00`, the
/// only version this crate writes.
///
/// ```
/// use biot_notifications::notification::TraceParent;
///
/// let incoming: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// let outgoing = incoming.child();
/// assert_eq!(outgoing.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_ne!(outgoing.parent_id(), incoming.parent_id());
/// assert!(outgoing.is_sampled());
///
/// assert!("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01".parse::<TraceParent>().is_err());
/// # Ok::<(), biot_notifications::notification::InvalidTraceParent>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Length of a version `00` traceparent: `00-` + 32 + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// The `sampled` trace flag: the caller may have recorded its part of the trace.
    pub const FLAG_SAMPLED: u8 = 0x01;

    /// A trace context from its parts.
    ///
    /// # Errors
    /// [`InvalidTraceParent::TraceId`] or [`InvalidTraceParent::ParentId`] when an id is
    /// all zeros, which the specification reserves as invalid.
    pub fn new(
        trace_id: [u8; 16],
        parent_id: [u8; 8],
        flags: u8,
    ) -> Result<Self, InvalidTraceParent> {
        if trace_id == [0; 16] {
            return Err(InvalidTraceParent::TraceId);
        }
        if parent_id == [0; 8] {
            return Err(InvalidTraceParent::ParentId);
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Parses a `traceparent` header value.
    ///
    /// # Errors
    /// An [`InvalidTraceParent`] saying which part is wrong.
    pub fn parse(s: &str) -> Result<Self, InvalidTraceParent> {
        let b = s.as_bytes();
        if b.len() < TRACEPARENT_LEN {
            return Err(InvalidTraceParent::Length);
        }
        let version = hex_array::<1>(&b[0..2]).ok_or(InvalidTraceParent::Version)?[0];
        if version == 0xff {
            return Err(InvalidTraceParent::Version);
        }
        if version == 0 && b.len() != TRACEPARENT_LEN {
            return Err(InvalidTraceParent::Length);
        }
        // Later versions may append fields, but only after another dash.
        let trailer_ok = b.len() == TRACEPARENT_LEN || b[TRACEPARENT_LEN] == b'-';
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' || !trailer_ok {
            return Err(InvalidTraceParent::Delimiter);
        }
        let trace_id = hex_array::<16>(&b[3..35]).ok_or(InvalidTraceParent::TraceId)?;
        let parent_id = hex_array::<8>(&b[36..52]).ok_or(InvalidTraceParent::ParentId)?;
        let flags = hex_array::<1>(&b[53..55]).ok_or(InvalidTraceParent::Flags)?[0];
        // Only `sampled` means the same in every version; a later version's other flags
        // could mean anything in version 00, which is what we write.
        let flags = if version == 0 {
            flags
        } else {
            flags & Self::FLAG_SAMPLED
        };
        Self::new(trace_id, parent_id, flags)
    }

    /// A new trace: random ids, sampled.
    pub fn generate() -> Self {
        loop {
            let [a, b] = [random_bytes(), random_bytes()];
            let mut trace_id = [0; 16];
            trace_id[..14].copy_from_slice(&a);
            trace_id[14..].copy_from_slice(&b[..2]);
            let mut parent_id = [0; 8];
            parent_id.copy_from_slice(&b[2..10]);
            // All-zero ids are invalid; drawing one is a 2^-64 chance, but a MUST.
            if let Ok(traceparent) = Self::new(trace_id, parent_id, Self::FLAG_SAMPLED) {
                return traceparent;
            }
        }
    }

    /// The context for a call made on behalf of this one: the same trace and flags, a
    /// new random parent-id.
    pub fn child(&self) -> Self {
        loop {
            let mut parent_id = [0; 8];
            parent_id.copy_from_slice(&random_bytes()[..8]);
            if let Ok(child) = Self::new(self.trace_id, parent_id, self.flags) {
                return child;
            }
        }
    }

    /// The trace-id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The trace-id as 32 lower-case hex digits, as in the header (and in logs).
    pub fn trace_id_hex(&self) -> String {
        let mut hex = String::with_capacity(32);
        push_hex(&mut hex, &self.trace_id);
        hex
    }

    /// The parent-id: the id of the call that made the request.
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the `sampled` flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags & Self::FLAG_SAMPLED != 0
    }

    /// The header value, `00-<trace-id>-<parent-id>-<flags>`.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::try_from(self.to_string())
            .expect("hex digits and dashes are a valid header value")
    }
}

impl fmt::Display for TraceParent {
    /// `00-<32 hex>-<16 hex>-<2 hex>`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(TRACEPARENT_LEN);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.parent_id);
        s.push('-');
        push_hex(&mut s, &[self.flags]);
        f.write_str(&s)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(s: &str) -> Result<Self, InvalidTraceParent> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for TraceParent {
    type Error = InvalidTraceParent;

    fn try_from(s: &str) -> Result<Self, InvalidTraceParent> {
        Self::parse(s)
    }
}

/// 14 random bytes: a v4 UUID's 16 less the two that carry its version and variant bits.
fn random_bytes() -> [u8; 14] {
    let u = *Uuid::new_v4().as_bytes();
    [
        u[0], u[1], u[2], u[3], u[4], u[5], u[7], u[9], u[10], u[11], u[12], u[13], u[14], u[15],
    ]
}

/// Decodes exactly `2 * N` lower-case hex digits.
fn hex_array<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            _ => None,
        }
    }
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// Why a `traceparent` value is not a valid W3C trace context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTraceParent {
    /// Shorter than 55 characters, or a version `00` value longer than that.
    #[error("invalid traceparent: {}", self.reason())]
    Length,
    /// The version is not two lower-case hex digits, or is the reserved `ff`.
    #[error("invalid traceparent: {}", self.reason())]
    Version,
    /// The fields are not separated by single dashes.
    #[error("invalid traceparent: {}", self.reason())]
    Delimiter,
    /// The trace-id is not 32 lower-case hex digits, or is all zeros.
    #[error("invalid traceparent: {}", self.reason())]
    TraceId,
    /// The parent-id is not 16 lower-case hex digits, or is all zeros.
    #[error("invalid traceparent: {}", self.reason())]
    ParentId,
    /// The trace flags are not two lower-case hex digits.
    #[error("invalid traceparent: {}", self.reason())]
    Flags,
}

impl InvalidTraceParent {
    fn reason(self) -> &'static str {
        match self {
            InvalidTraceParent::Length => {
                "it must be 55 characters long (version 00) or longer (later versions)"
            }
            InvalidTraceParent::Version => {
                "its version must be two lower-case hex digits other than `ff`"
            }
            InvalidTraceParent::Delimiter => "its fields must be separated by single dashes",
            InvalidTraceParent::TraceId => {
                "its trace-id must be 32 lower-case hex digits, not all zeros"
            }
            InvalidTraceParent::ParentId => {
                "its parent-id must be 16 lower-case hex digits, not all zeros"
            }
            InvalidTraceParent::Flags => "its trace flags must be two lower-case hex digits",
        }
    }
}

impl From<InvalidTraceParent> for ValidationError {
    /// A [`ValidationError::InvalidAttribute`] for `traceparent`, for hosts that read the header
    /// from an incoming request.
    fn from(invalid: InvalidTraceParent) -> Self {
        ValidationError::InvalidAttribute {
            attribute: "traceparent",
            reason: invalid.reason().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_version_keeps_only_the_sampled_flag_and_is_written_as_00() {
        let traceparent = TraceParent::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-what-comes-next",
        )
        .unwrap();
        assert_eq!(traceparent.flags(), TraceParent::FLAG_SAMPLED);
        assert_eq!(
            traceparent.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn random_bytes_skip_the_uuid_version_and_variant() {
        // Bytes 6 and 8 of a v4 UUID always start with 0100 and 10; if they leaked in,
        // some position would never vary in those bits across draws.
        let mut seen_or = [0u8; 14];
        let mut seen_and = [0xffu8; 14];
        for _ in 0..64 {
            for (i, byte) in random_bytes().into_iter().enumerate() {
                seen_or[i] |= byte;
                seen_and[i] &= byte;
            }
        }
        assert!(seen_or.iter().all(|&b| b == 0xff));
        assert!(seen_and.iter().all(|&b| b == 0));
    }
    #[test]
    fn invalid_traceparent_becomes_an_invalid_attribute_error() {
        use crate::wire_error::BiotError;
        let err = ValidationError::from(InvalidTraceParent::TraceId);
        assert_eq!(err.code(), "INVALID_ATTRIBUTE");
        assert_eq!(
            err.to_string(),
            "the attribute `traceparent` is invalid: its trace-id must be 32 lower-case hex digits, not all zeros"
        );
    }
}
