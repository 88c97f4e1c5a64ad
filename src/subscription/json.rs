//! The JSON writer: a subscription's JSON, byte for byte what serde_json writes, in
//! about half the instructions.

use uuid::Uuid;

use super::rfc3339::{rfc3339, RFC3339_ROOM};
use super::Subscription;

impl Subscription {
    /// Appends this subscription's JSON to `out`: byte for byte what its [`Serialize`]
    /// writes through serde_json, in about half the instructions. The keys, the catalog's
    /// names, the id and the creation time are ASCII that JSON never escapes, so they are
    /// copied as they are; the endpoint and the template name are written by
    /// [`write_json_string`]. The handler writes every subscribe response this way.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(br#"{"entityTypeName":""#);
        out.extend_from_slice(self.key.entity_type().as_str().as_bytes());
        out.extend_from_slice(br#"","actionName":""#);
        out.extend_from_slice(self.key.action().as_str().as_bytes());
        out.extend_from_slice(br#"","endpoint":"#);
        write_json_string(out, self.key.endpoint.as_str())?;
        if let Some(template) = &self.key.template_name {
            out.extend_from_slice(br#","templateName":"#);
            write_json_string(out, template.as_str())?;
        }
        out.extend_from_slice(br#","id":""#);
        let mut id = Uuid::encode_buffer();
        out.extend_from_slice(self.id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(br#"","creationTime":""#);
        let mut time = [0; RFC3339_ROOM];
        out.extend_from_slice(
            rfc3339(&self.created_at, &mut time).map_err(serde::ser::Error::custom)?,
        );
        out.extend_from_slice(br#""}"#);
        Ok(())
    }
}

/// Appends `text` as a JSON string, byte for byte as serde_json writes it. serde_json
/// escapes only `"`, `\` and the control characters below U+0020; an endpoint (which
/// the `url` crate has percent-encoded) and a template name almost never hold one, so
/// such text is copied between quotes after one scan, where serde_json's writer looks
/// each byte up in its escape table (~800 instructions per subscribe response, ~10 a
/// byte). Text that needs escaping still goes through serde_json.
fn write_json_string(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    // A fold, not `any`: without the early exit the loop vectorises.
    let needs_escaping = text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escaping {
        return serde_json::to_writer(&mut *out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::EventType;
    use crate::endpoint::Endpoint;
    use crate::subscription::{SubscriptionKey, TemplateName};
    use time::OffsetDateTime;

    /// The fast path of `write_json_string` must not skip anything serde_json escapes.
    #[test]
    fn json_strings_are_written_as_serde_json_writes_them() {
        let specials = ["", "\u{7f}", "é", "\u{2028}", "😀", "/", "'", "<"];
        let every_ascii = (0u8..0x80).map(|b| char::from(b).to_string());
        for piece in every_ascii.chain(specials.iter().map(|s| s.to_string())) {
            for text in [
                piece.clone(),
                format!("https://a.example/p?{piece}x"),
                format!("{piece}{piece}"),
            ] {
                let mut written = b"prefix".to_vec();
                write_json_string(&mut written, &text).unwrap();
                let mut expected = b"prefix".to_vec();
                expected.extend(serde_json::to_vec(&text).unwrap());
                assert_eq!(written, expected, "{text:?}");
            }
        }
    }

    /// `write_json` is a faster spelling of `Serialize`: it must write the same bytes
    /// for every pair, for templates and endpoints that need escaping, for every offset,
    /// and fail where serialising fails.
    #[test]
    fn write_json_writes_what_serialize_writes() {
        let endpoints = [
            "https://plugin.example.com/hook",
            "https://example.com/p?a\\b\"c",
            "https://Bücher.example:8443/a%20b/{c}?x={y}|z^`",
            "http://[::1]:8080/",
        ];
        let templates = [
            None,
            Some("adultPatient"),
            Some("adult \"A\""),
            Some("back\\slash/and/slash"),
            Some("ünïcödé \u{2028} 😀"),
            Some("</script>"),
        ];
        let times = [
            OffsetDateTime::UNIX_EPOCH,
            time::macros::datetime!(2026-11-27 23:30:08.891736509 +05:30),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 -23:59),
            // No RFC 3339 form: an offset with seconds.
            time::macros::datetime!(2026-11-27 23:30:08 +01:00:30),
        ];
        let (mut written, mut refused) = (0, 0);
        for (n, event_type) in EventType::all().enumerate() {
            let endpoint = Endpoint::parse(endpoints[n % endpoints.len()]).unwrap();
            for template in templates {
                let key = SubscriptionKey {
                    event_type,
                    endpoint: endpoint.clone(),
                    template_name: template.map(|t| TemplateName::new(t).unwrap()),
                };
                let time = times[(n + written + refused) % times.len()];
                let subscription = Subscription::from_parts(Uuid::from_u128(n as u128), key, time);
                let mut fast = Vec::new();
                match serde_json::to_vec(&subscription) {
                    Ok(reference) => {
                        subscription.write_json(&mut fast).unwrap();
                        assert_eq!(
                            String::from_utf8(fast).unwrap(),
                            String::from_utf8(reference).unwrap()
                        );
                        written += 1;
                    }
                    Err(_) => {
                        assert!(subscription.write_json(&mut fast).is_err(), "{time}");
                        refused += 1;
                    }
                }
            }
        }
        assert!(
            written > 150 && refused > 0,
            "{written} written, {refused} refused"
        );
    }
}
