//! The cryptography under `jsonwebtoken`: RS512 on `ring`, and nothing else.
//!
//! `jsonwebtoken` 10 leaves its backend to a process-wide `CryptoProvider`. Ours is
//! installed before the first token is signed or verified. It answers RS512 only, so
//! even a caller that somehow asked `jsonwebtoken` for another algorithm would get an
//! error, never a check with the wrong primitive. When the host installed a provider of
//! its own first (every complete provider implements RS512), that one is used.

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{
    RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA512,
    RSA_PKCS1_SHA512,
};

static RS512_ON_RING: CryptoProvider = CryptoProvider {
    signer_factory: rs512_signer,
    verifier_factory: rs512_verifier,
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes sure `jsonwebtoken` has a backend: ours, unless the host installed one first.
pub(super) fn install() {
    // An error only means a provider is installed already, which is what we need.
    let _ = RS512_ON_RING.install_default();
}

/// An RSA private key parsed by `ring` (PKCS#1 DER, as `EncodingKey::from_rsa_pem` keeps it).
pub(super) fn parse_key_pair(pkcs1_der: &[u8]) -> Result<RsaKeyPair, ring::error::KeyRejected> {
    RsaKeyPair::from_der(pkcs1_der)
}

struct Rs512Signer(RsaKeyPair);

fn rs512_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, JwtError> {
    if *algorithm != Algorithm::RS512 || key.family() != AlgorithmFamily::Rsa {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let key_pair = parse_key_pair(key.inner())
        .map_err(|rejected| ErrorKind::InvalidRsaKey(rejected.to_string()))?;
    Ok(Box::new(Rs512Signer(key_pair)))
}

impl Signer<Vec<u8>> for Rs512Signer {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA512,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| signature::Error::new())?;
        Ok(signature)
    }
}

impl JwtSigner for Rs512Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS512
    }
}

struct Rs512Verifier(DecodingKey);

fn rs512_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> Result<Box<dyn JwtVerifier>, JwtError> {
    if *algorithm != Algorithm::RS512 || key.family() != AlgorithmFamily::Rsa {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(Rs512Verifier(key.clone())))
}

impl Verifier<Vec<u8>> for Rs512Verifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let checked =
            match self.0.kind() {
                DecodingKeyKind::SecretOrDer(pkcs1_der) => {
                    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA512, pkcs1_der)
                        .verify(message, signature)
                }
                DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
                    .verify(&RSA_PKCS1_2048_8192_SHA512, message, signature),
            };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs512Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS512
    }
}
