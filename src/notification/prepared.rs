//! One event rendered for delivery: the [`PreparedNotification`].

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Method, Request};

use super::{
    Notification, TraceParent, CONTENT_TYPE_JSON, HOOKTYPE, HOOKTYPE_NOTIFICATION, TRACEPARENT,
};
use crate::endpoint::Endpoint;

// Named in the docs only.
#[cfg(doc)]
use super::Event;

/// One event rendered for delivery, shared by every subscribed endpoint.
///
/// Holds the [`Notification`], its body serialised once, and the [`TraceParent`] sent
/// with it. Cloning is two reference-count increments; turning it into a request for an
/// endpoint ([`to_request`](Self::to_request)) copies no body bytes.
#[derive(Clone)]
pub struct PreparedNotification {
    shared: Arc<Shared>,
    body: Bytes,
}

/// What every request for one event has in common, built once.
struct Shared {
    notification: Notification,
    traceparent: TraceParent,
    headers: HeaderMap,
}

impl PreparedNotification {
    /// Serialises `notification`, to be sent with `traceparent`.
    ///
    /// [`Event::prepare`] is the usual way to get one.
    ///
    /// # Errors
    /// When the notification does not serialise: only a time outside the years 0000 to
    /// 9999 or with an offset in seconds, which RFC 3339 cannot write.
    pub fn new(
        notification: Notification,
        traceparent: TraceParent,
    ) -> Result<Self, serde_json::Error> {
        let body = Bytes::from(serde_json::to_vec(&notification)?);
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(CONTENT_TYPE, CONTENT_TYPE_JSON);
        headers.insert(HOOKTYPE, HOOKTYPE_NOTIFICATION);
        headers.insert(TRACEPARENT, traceparent.to_header_value());
        Ok(PreparedNotification {
            shared: Arc::new(Shared {
                notification,
                traceparent,
                headers,
            }),
            body,
        })
    }

    /// The notification.
    pub fn notification(&self) -> &Notification {
        &self.shared.notification
    }

    /// The serialised body, the same allocation for every endpoint.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The trace context sent in the `traceparent` header.
    pub fn traceparent(&self) -> TraceParent {
        self.shared.traceparent
    }

    /// The request BioT makes to `endpoint`: `POST`, with `content-type:
    /// application/json`, `hooktype: NOTIFICATION` and `traceparent`, and no
    /// `Authorization` (the token travels in the body).
    pub fn to_request(&self, endpoint: &Endpoint) -> Request<Bytes> {
        let mut request = Request::new(self.body.clone());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = endpoint.to_uri();
        *request.headers_mut() = self.shared.headers.clone();
        request
    }
}

impl fmt::Debug for PreparedNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedNotification")
            .field("notification", &self.shared.notification)
            .field("traceparent", &self.shared.traceparent)
            .field("body_len", &self.body.len())
            .finish()
    }
}
