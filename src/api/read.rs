//! Reading a request: its headers in one pass, its trace id, and its JSON body within
//! the size limit.

use std::error::Error as StdError;
use std::fmt;
use std::sync::OnceLock;

use bytes::{Buf, Bytes};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{Api, ApiError};
use crate::notification::TraceParent;
use crate::subscription::ValidationError;
use crate::wire_error::{echo, BoxError};

impl Api {
    /// Reads a JSON request body of at most the configured size.
    pub(super) async fn read_body<B>(
        &self,
        headers: &BodyHeaders,
        body: B,
    ) -> Result<Bytes, ApiError>
    where
        B: Body + Send,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        if let Err(content_type) = &headers.content_type {
            return Err(ApiError::UnsupportedMediaType {
                content_type: content_type
                    .as_ref()
                    .map(|value| echo(&String::from_utf8_lossy(value.as_bytes()))),
            });
        }
        let limit = self.inner.max_body_bytes;
        let too_large = || ApiError::PayloadTooLarge { limit };
        // Refuse what is declared too large before reading a byte of it.
        let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
        let declared_too_large = headers
            .longest_declared_length
            .is_some_and(|length| length > limit_u64);
        if declared_too_large || body.size_hint().lower() > limit_u64 {
            return Err(too_large());
        }
        // Undeclared lengths (chunked bodies) are cut off at the limit while reading.
        match data_of(Limited::new(body, limit)).await {
            Ok(data) => Ok(data),
            Err(error) if is_length_limit(&*error) => Err(too_large()),
            Err(_) => Err(ValidationError::MalformedBody {
                reason: "the request body could not be read".to_owned(),
            }
            .into()),
        }
    }
}

/// A body's data: its only data frame as it is, or the frames joined; trailers are
/// ignored. What `BodyExt::collect` gives, without the queue of frames it keeps first,
/// which cost more than the rest of reading a body of one frame (the usual case).
async fn data_of<B: Body>(body: B) -> Result<Bytes, B::Error> {
    let mut body = std::pin::pin!(body);
    let mut first = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue;
        };
        let chunk = data.copy_to_bytes(data.remaining());
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&chunk),
            None if first.is_empty() => first = chunk,
            None => joined = Some([&first[..], &chunk[..]].concat()),
        }
    }
    Ok(joined.map_or(first, Bytes::from))
}

/// W3C Trace Context's header, named once: looking a header up by a `&str` parses the
/// name on every request.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The length of a trace id: 32 lower-case hex digits.
const TRACE_ID_LEN: usize = uuid::fmt::Simple::LENGTH;

/// What the handler reads of a request's headers, found in one pass over them, which
/// compares names (mostly one-byte codes) where four lookups hashed one name each.
/// Where a header has several values, the first counts, as `HeaderMap::get` reads it,
/// except `Content-Length`, of which every value is held to the limit.
pub(super) struct ReadHeaders {
    /// From the first `traceparent`.
    pub(super) trace_id: TraceId,
    /// The first `Authorization`, kept only to scrub it from error messages (a clone:
    /// the request is handed on whole).
    pub(super) authorization: Option<HeaderValue>,
    pub(super) body_headers: BodyHeaders,
}

/// What the headers say of the body, for the routes that read one. Lent, not moved, to
/// the route's future, which must stay below the size where an allocation of it costs
/// more (~1 KB).
pub(super) struct BodyHeaders {
    /// `Ok` when the first `Content-Type` is JSON; else that value (a clone), if any, for
    /// the error that reading the body raises.
    content_type: Result<(), Option<HeaderValue>>,
    /// The longest of the `Content-Length`s that parse as a number.
    longest_declared_length: Option<u64>,
}

impl ReadHeaders {
    pub(super) fn of(headers: &HeaderMap) -> Self {
        let (mut traceparent, mut authorization, mut content_type) = (None, None, None);
        let mut longest_declared_length = None;
        for (name, value) in headers {
            if name == CONTENT_TYPE {
                content_type.get_or_insert(value);
            } else if name == CONTENT_LENGTH {
                let length = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                longest_declared_length = longest_declared_length.max(length);
            } else if name == AUTHORIZATION {
                authorization.get_or_insert(value);
            } else if name == TRACEPARENT {
                traceparent.get_or_insert(value);
            }
        }
        ReadHeaders {
            trace_id: TraceId::of(traceparent),
            authorization: authorization.cloned(),
            body_headers: BodyHeaders {
                content_type: match content_type {
                    Some(value) if is_json_content_type(value) => Ok(()),
                    other => Err(other.cloned()),
                },
                longest_declared_length,
            },
        }
    }
}

/// A request's trace id: that of its `traceparent` when it is valid, else a fresh one,
/// so that every error a caller reports can be found in the logs. Made when first
/// written, and then kept: most requests are answered without an error and without
/// anyone listening to their span, and never need one (a fresh one costs ~200
/// instructions: a random number and 32 hex digits).
pub(super) struct TraceId {
    /// The valid `traceparent`'s trace id.
    from_traceparent: Option<[u8; 16]>,
    /// The id as 32 lower-case hex digits, once asked for.
    text: OnceLock<[u8; TRACE_ID_LEN]>,
}

impl TraceId {
    fn of(traceparent: Option<&HeaderValue>) -> Self {
        TraceId {
            from_traceparent: traceparent
                .and_then(|value| value.to_str().ok())
                .and_then(|value| TraceParent::parse(value).ok())
                .map(|traceparent| traceparent.trace_id()),
            text: OnceLock::new(),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        let text = self.text.get_or_init(|| {
            // A trace id is not a UUID, but 16 bytes that uuid writes as the same 32 hex
            // digits.
            let id = self
                .from_traceparent
                .map_or_else(uuid::Uuid::new_v4, uuid::Uuid::from_bytes);
            let mut text = [0; TRACE_ID_LEN];
            id.simple().encode_lower(&mut text);
            text
        });
        std::str::from_utf8(text).expect("hex digits are ASCII")
    }
}

/// Writes the id, making it first if it is not made yet.
impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts `application/json` and `application/*+json`, in any case, with parameters;
/// a `charset` other than UTF-8 is refused, since JSON is UTF-8 (RFC 8259).
fn is_json_content_type(value: &HeaderValue) -> bool {
    // The usual value first, without taking it apart.
    value.as_bytes().eq_ignore_ascii_case(b"application/json") || value.to_str().is_ok_and(is_json)
}

fn is_json(content_type: &str) -> bool {
    let mut pieces = content_type.split(';');
    let essence = pieces.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.as_bytes();
    let json_subtype = subtype.eq_ignore_ascii_case(b"json")
        || (subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"));
    let utf8 = pieces.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let charset = value.trim().trim_matches('"');
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    kind.eq_ignore_ascii_case("application") && json_subtype && utf8
}

/// Whether a body error is, or was caused by, hitting a length limit (ours, or one a
/// host's middleware put on the body before us).
fn is_length_limit(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<LengthLimitError>() {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_any_case() {
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/vnd.biot+json",
            "application/problem+JSON; charset=utf-8",
        ] {
            assert!(is_json(accepted), "{accepted}");
        }
        for refused in [
            "text/plain",
            "text/json",
            "application/jsonx",
            "application/+json",
            "application/x-www-form-urlencoded",
            "json",
            "application/json; charset=latin1",
            "",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }
}
