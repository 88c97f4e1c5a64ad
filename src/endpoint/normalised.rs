//! The [`Endpoint`] type: a structurally valid, normalised `http`/`https` URL.

use std::borrow::Borrow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use url::{Host, Url};

use super::{EndpointRejection, MAX_ENDPOINT_LEN};
use crate::wire_error::echo;

// Named in the docs only.
#[cfg(doc)]
use super::EndpointPolicy;

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
pub(super) fn typed_host(host: &str) -> Host<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::EndpointPolicy;

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
