//! Keys: the [`PublicKey`] that verifies BioT tokens and the [`SigningKey`] that makes them.

use std::fmt;

use jsonwebtoken::{DecodingKey, EncodingKey};

/// A key could not be loaded. Never shows the key's contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is neither PEM nor the bare base64 of a SubjectPublicKeyInfo.
    #[error("the {what} is neither PEM nor bare base64 DER")]
    NotPemOrBase64 {
        /// `public key` or `private key`.
        what: &'static str,
    },
    /// The text decodes, but is not an RSA key of that kind (or is one `ring` refuses,
    /// e.g. shorter than 2048 bits).
    #[error("the {what} is not a usable RSA key: {reason}")]
    NotRsa {
        /// `public key` or `private key`.
        what: &'static str,
        /// Why, as the parser says it.
        reason: String,
    },
}

/// Signing a token failed (claims that are not a JSON object, or the backend failed).
#[derive(Debug, thiserror::Error)]
#[error("signing the token failed: {reason}")]
pub struct SigningError {
    reason: String,
}

/// An RSA public key that verifies RS512 tokens, with an optional key id (`kid`).
///
/// Loads both forms BioT hands out: PEM (`-----BEGIN PUBLIC KEY-----` or
/// `-----BEGIN RSA PUBLIC KEY-----`), and the bare base64 of a SubjectPublicKeyInfo, as
/// plugins receive it in an environment variable.
#[derive(Clone)]
pub struct PublicKey {
    pub(super) key: DecodingKey,
    pub(super) kid: Option<String>,
}

impl PublicKey {
    /// Loads a key from PEM or from the bare base64 of its SubjectPublicKeyInfo
    /// (whitespace and line breaks are ignored).
    ///
    /// # Errors
    /// [`KeyError`] when the text is not an RSA public key in either form.
    pub fn from_pem_or_base64(text: &str) -> Result<PublicKey, KeyError> {
        super::ring_backend::install();
        const WHAT: &str = "public key";
        let text = text.trim();
        let key = if text.starts_with("-----BEGIN") {
            // Only public key PEMs: the PEM reader would also take a private key, whose
            // key then verifies nothing.
            let public = [
                "-----BEGIN PUBLIC KEY-----",
                "-----BEGIN RSA PUBLIC KEY-----",
            ];
            if !public.iter().any(|label| text.starts_with(label)) {
                return Err(KeyError::NotRsa {
                    what: WHAT,
                    reason: "a PEM that is not a public key".to_owned(),
                });
            }
            DecodingKey::from_rsa_pem(text.as_bytes())
        } else {
            let bare: String = text.split_whitespace().collect();
            let is_base64 = !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            if !is_base64 {
                return Err(KeyError::NotPemOrBase64 { what: WHAT });
            }
            // What BioT's own plugin templates do with the bare form.
            let pem = format!("-----BEGIN PUBLIC KEY-----\n{bare}\n-----END PUBLIC KEY-----\n");
            DecodingKey::from_rsa_pem(pem.as_bytes())
        };
        let key = key.map_err(|error| KeyError::NotRsa {
            what: WHAT,
            reason: error.to_string(),
        })?;
        Ok(PublicKey { key, kid: None })
    }

    /// The same key, chosen for tokens whose header names `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> PublicKey {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if one was given.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// An RSA private key that signs RS512 tokens, with an optional key id put in each
/// token's header. `Debug` shows only the key id.
#[derive(Clone)]
pub struct SigningKey {
    pub(super) key: EncodingKey,
    pub(super) kid: Option<String>,
}

impl SigningKey {
    /// Loads a PEM private key: PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what
    /// `openssl genpkey` writes) or PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`).
    ///
    /// # Errors
    /// [`KeyError`] when the text is not an RSA private key `ring` accepts.
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        super::ring_backend::install();
        const WHAT: &str = "private key";
        if !pem.trim_start().starts_with("-----BEGIN") {
            return Err(KeyError::NotPemOrBase64 { what: WHAT });
        }
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|error| KeyError::NotRsa {
            what: WHAT,
            reason: error.to_string(),
        })?;
        // Checked now, so that a bad key fails at start rather than at the first event.
        super::ring_backend::parse_key_pair(key.inner()).map_err(|rejected| KeyError::NotRsa {
            what: WHAT,
            reason: rejected.to_string(),
        })?;
        Ok(SigningKey { key, kid: None })
    }

    /// The same key, naming `kid` in the header of every token it signs.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> SigningKey {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if one was given.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Signs `claims` as an RS512 JWS (compact form).
    ///
    /// RSA signing costs on the order of a millisecond: sign once and reuse the token,
    /// as [`SigningTokenProvider`](super::SigningTokenProvider) does.
    ///
    /// # Errors
    /// The claims do not serialise to a JSON object, or signing failed.
    pub fn sign(&self, claims: &impl serde::Serialize) -> Result<String, SigningError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS512);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|error| SigningError {
            reason: error.to_string(),
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}
