//! The subscription layer's error: [`ValidationError`], for a request that is not a
//! valid subscription.

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::catalog::CatalogError;
use crate::endpoint::InvalidEndpoint;
use crate::wire_error::{details_object, BiotError};

/// Why a subscribe or unsubscribe request is not a valid subscription.
///
/// Every variant is answered `400`; the code and details are those of BioT's dispatcher
/// (see the table in `docs/contract.md`). The names' and the endpoint's own errors are
/// carried whole, so their codes and details are theirs.
///
/// ```
/// use biot_notifications::subscription::ValidationError;
/// use biot_notifications::{BiotError, SubscribeRequest};
///
/// let err = SubscribeRequest::from_json(br#"{"entityTypeName": "patient"}"#).unwrap_err();
/// assert!(matches!(err, ValidationError::MissingAttribute { attribute: "actionName" }));
/// assert_eq!(err.code(), "ATTRIBUTE_IS_MANDATORY");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// `entityTypeName` or `actionName` is not in BioT's catalog.
    #[error(transparent)]
    Name(#[from] CatalogError),

    /// The endpoint is not a URL the endpoint policy accepts.
    #[error(transparent)]
    Endpoint(#[from] InvalidEndpoint),

    /// A mandatory attribute is missing, null or empty.
    #[error("the attribute `{attribute}` is mandatory")]
    MissingAttribute {
        /// The attribute's wire name, e.g. `endpoint`.
        attribute: &'static str,
    },

    /// An attribute is present but unacceptable (wrong type, too long, ...).
    #[error("the attribute `{attribute}` is invalid: {reason}")]
    InvalidAttribute {
        /// The attribute's wire name, e.g. `templateName`.
        attribute: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The request body is not the JSON object the call expects.
    #[error("the request body is malformed: {reason}")]
    MalformedBody {
        /// What is wrong with it.
        reason: String,
    },
}

impl BiotError for ValidationError {
    fn code(&self) -> &'static str {
        match self {
            ValidationError::Name(error) => error.code(),
            ValidationError::Endpoint(error) => error.code(),
            ValidationError::MissingAttribute { .. } => "ATTRIBUTE_IS_MANDATORY",
            ValidationError::InvalidAttribute { .. } => "INVALID_ATTRIBUTE",
            ValidationError::MalformedBody { .. } => "MALFORMED_REQUEST_BODY",
        }
    }

    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            ValidationError::Name(error) => error.details(),
            ValidationError::Endpoint(error) => error.details(),
            ValidationError::MissingAttribute { attribute } => {
                details_object(json!({ "attributeName": attribute }))
            }
            ValidationError::InvalidAttribute { attribute, reason } => {
                details_object(json!({ "attributeName": attribute, "reason": reason }))
            }
            ValidationError::MalformedBody { reason } => {
                details_object(json!({ "reason": reason }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::EndpointRejection;

    #[test]
    fn each_validation_error_has_its_code_and_details() {
        let cases = [
            (
                ValidationError::MissingAttribute {
                    attribute: "endpoint",
                },
                "ATTRIBUTE_IS_MANDATORY",
                json!({"attributeName": "endpoint"}),
            ),
            (
                ValidationError::InvalidAttribute {
                    attribute: "templateName",
                    reason: "it must not be empty".into(),
                },
                "INVALID_ATTRIBUTE",
                json!({"attributeName": "templateName", "reason": "it must not be empty"}),
            ),
            (
                ValidationError::MalformedBody {
                    reason: "the JSON ends too early".into(),
                },
                "MALFORMED_REQUEST_BODY",
                json!({"reason": "the JSON ends too early"}),
            ),
            (
                ValidationError::from(InvalidEndpoint::new(
                    "ftp://x",
                    EndpointRejection::UnsupportedScheme {
                        scheme: "ftp".into(),
                    },
                )),
                "INVALID_ENDPOINT",
                json!({
                    "invalidEndpoint": "ftp://x",
                    "reason": EndpointRejection::UnsupportedScheme { scheme: "ftp".into() }.to_string(),
                }),
            ),
        ];
        for (error, code, details) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            assert!(error.is_client_error());
            assert_eq!(Value::Object(error.details()), details, "{code}");
        }
        let name = ValidationError::from(crate::catalog::EntityType::parse("nope").unwrap_err());
        assert_eq!(name.code(), "INVALID_ENTITY_TYPE_NAME");
        assert_eq!(name.details()["invalidEntityType"], "nope");
    }
}
