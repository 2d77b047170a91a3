//! What cosign v2 writes to a registry, and real ECDSA P-256 keys to sign it
//! with, so registry state can be read by another client and tampered with.
//!
//! Shapes, from sigstore/cosign v2 source:
//! - Tags `sha256-<hex>.sig` / `.att` beside the image (pkg/oci/remote
//!   `SignatureTag`, `AttestationTag`: `<alg>-<hex>.<suffix>`).
//! - An OCI image manifest, one layer per signature (pkg/oci/static,
//!   pkg/oci/mutate): signature layers have media type
//!   `application/vnd.dev.cosign.simplesigning.v1+json` (pkg/types/media.go
//!   `SimpleSigningMediaType`) and carry base64(signature) in the annotation
//!   `dev.cosignproject.cosign/signature` (static.SignatureAnnotationKey);
//!   keyless ones add `dev.sigstore.cosign/certificate` and `…/chain`, a tlog
//!   entry `dev.sigstore.cosign/bundle`.
//! - The simple-signing payload (sigstore/sigstore pkg/signature/payload
//!   `SimpleContainerImage`): `{"critical":{"identity":{"docker-reference"},
//!   "image":{"docker-manifest-digest"},"type":"cosign container image
//!   signature"},"optional":null}`.
//! - Attestation layers: media type `application/vnd.dsse.envelope.v1+json`
//!   (types.DssePayloadType), the blob a DSSE envelope whose payload is an
//!   in-toto Statement v0.1, annotations `predicateType` and an empty
//!   `dev.cosignproject.cosign/signature` (cmd/cosign/cli/attest/attest.go).
//!   The DSSE signature covers PAE(payloadType, payload)
//!   (secure-systems-lab/go-securesystemslib dsse).
//! - Keys: ECDSA P-256 + SHA-256, ASN.1 DER signatures (pkg/cosign/keys.go
//!   `GeneratePrivateKey`); public keys as PEM `PUBLIC KEY` (PKIX), exactly
//!   what real `cosign.pub` files hold.
//!
//! Deliberate differences: the private key file. Real cosign writes PEM
//! `ENCRYPTED SIGSTORE PRIVATE KEY` (PKCS#8 encrypted with scrypt + NaCl
//! secretbox, go-securesystemslib `encrypted`); the fake writes PEM
//! `FAKE COSIGN PRIVATE KEY` (PKCS#8 with a salted password hash beside it)
//! and reads only that. A keyless "certificate" is a PEM `FAKE FULCIO
//! CERTIFICATE` naming the subject, the issuer and the ephemeral public key,
//! not X.509; a "tlog bundle" is a marker, nothing is uploaded anywhere.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde_json::{Value, json};

use crate::registry::{OCI_MANIFEST, Registry, hex, sha256_digest};

pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
pub const INTOTO: &str = "application/vnd.in-toto+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
const PRIVATE_PEM: &str = "FAKE COSIGN PRIVATE KEY";
const CERT_PEM: &str = "FAKE FULCIO CERTIFICATE";

/// `sha256-<hex>.<suffix>` for `sha256:<hex>`.
pub fn tag(digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", digest.replacen(':', "-", 1))
}

/// The simple-signing payload cosign signs for `repo@digest`.
pub fn simple_signing(repo: &str, digest: &str) -> Vec<u8> {
    json!({
        "critical": {
            "identity": {"docker-reference": repo},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// DSSE pre-authentication encoding: "DSSEv1 <len> <type> <len> <body>".
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn generate() -> Result<SigningKey, String> {
    let mut bytes = [0u8; 32];
    loop {
        getrandom::getrandom(&mut bytes).map_err(|e| format!("reading randomness: {e}"))?;
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
}

/// base64 of the DER signature over `message` (SHA-256 inside ECDSA).
pub fn sign(key: &SigningKey, message: &[u8]) -> String {
    let sig: Signature = key.sign(message);
    let der: DerSignature = sig.to_der();
    B64.encode(der.as_bytes())
}

/// Whether `b64` is a valid signature of `message` under `key`.
pub fn verify(key: &VerifyingKey, message: &[u8], b64: &str) -> bool {
    let Ok(der) = B64.decode(b64.trim()) else {
        return false;
    };
    let Ok(sig) = Signature::from_der(&der) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

pub fn public_pem(key: &VerifyingKey) -> Result<String, String> {
    key.to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| format!("marshalling public key: {e}"))
}

pub fn load_public(pem: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| {
        "PEM decoding failed".to_owned() // cryptoutils.UnmarshalPEMToPublicKey's words
    })
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_body(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest[label_end + 5..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some((label, B64.decode(b64).ok()?))
}

fn password_hash(salt: &str, password: &str) -> String {
    sha256_digest(format!("fake-cosign/{salt}/{password}").as_bytes())
}

/// The fake's private key file: PKCS#8 and a salted hash of the password.
pub fn private_pem(key: &SigningKey, password: &str) -> Result<String, String> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| format!("x509 encoding private key: {e}"))?;
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| e.to_string())?;
    let salt = hex(&salt);
    let doc = json!({
        "salt": salt,
        "password": password_hash(&salt, password),
        "pkcs8": B64.encode(der.as_bytes()),
    });
    Ok(pem_block(PRIVATE_PEM, doc.to_string().as_bytes()))
}

/// Read the fake's private key; errors in cosign's words (LoadPrivateKey).
pub fn load_private(text: &str, password: &str) -> Result<SigningKey, String> {
    let (label, body) = pem_body(text).ok_or("invalid pem block")?;
    if label != PRIVATE_PEM {
        return Err(format!(
            "unsupported pem type: {label} (the FAKE cosign reads only its own `{PRIVATE_PEM}` files, made by its generate-key-pair)"
        ));
    }
    let doc: Value = serde_json::from_slice(&body).map_err(|_| "invalid pem block")?;
    let field = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default();
    if password_hash(field("salt"), password) != field("password") {
        return Err("decrypt: encrypted: decryption failed".into());
    }
    let der = B64
        .decode(field("pkcs8"))
        .map_err(|_| "parsing private key: bad base64")?;
    SigningKey::from_pkcs8_der(&der).map_err(|e| format!("parsing private key: {e}"))
}

/// A keyless signer's "certificate": who, which issuer, which key.
pub fn certificate(subject: &str, issuer: &str, key: &VerifyingKey) -> Result<String, String> {
    let der = key
        .to_public_key_der()
        .map_err(|e| format!("marshalling public key: {e}"))?;
    let doc =
        json!({"subject": subject, "issuer": issuer, "public_key": B64.encode(der.as_bytes())});
    Ok(pem_block(CERT_PEM, doc.to_string().as_bytes()))
}

pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    pub key: VerifyingKey,
}

pub fn read_certificate(pem: &str) -> Option<Certificate> {
    let (label, body) = pem_body(pem)?;
    if label != CERT_PEM {
        return None;
    }
    let doc: Value = serde_json::from_slice(&body).ok()?;
    let der = B64.decode(doc.get("public_key")?.as_str()?).ok()?;
    Some(Certificate {
        subject: doc.get("subject")?.as_str()?.to_owned(),
        issuer: doc.get("issuer")?.as_str()?.to_owned(),
        key: VerifyingKey::from_public_key_der(&der).ok()?,
    })
}

/// One layer of a `.sig` / `.att` manifest, with its blob.
#[derive(Clone, Debug)]
pub struct Layer {
    pub media_type: String,
    pub digest: String,
    pub annotations: serde_json::Map<String, Value>,
    /// The blob as the registry serves it (`None`: missing from the registry).
    pub blob: Option<Vec<u8>>,
}

impl Layer {
    pub fn new(
        media_type: &str,
        blob: Vec<u8>,
        annotations: serde_json::Map<String, Value>,
    ) -> Layer {
        Layer {
            media_type: media_type.to_owned(),
            digest: sha256_digest(&blob),
            annotations,
            blob: Some(blob),
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).and_then(Value::as_str)
    }

    /// The blob, if the registry served bytes that hash to the layer digest.
    pub fn verified_blob(&self) -> Option<&[u8]> {
        self.blob
            .as_deref()
            .filter(|b| sha256_digest(b) == self.digest)
    }
}

/// The layers under `repo:tag`, `None` when the tag does not exist.
pub fn read_layers(reg: &Registry, repo: &str, tag: &str) -> Result<Option<Vec<Layer>>, String> {
    let Some(manifest) = reg.manifest(repo, tag)? else {
        return Ok(None);
    };
    let doc: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| format!("parsing {repo}:{tag} manifest: {e}"))?;
    let mut out = Vec::new();
    for l in doc
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let digest = l
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        out.push(Layer {
            media_type: l
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            annotations: l
                .get("annotations")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            blob: reg.blob(repo, &digest)?,
            digest,
        });
    }
    Ok(Some(out))
}

/// Write `layers` as the OCI manifest under `repo:tag` (blobs first).
pub fn write_layers(reg: &Registry, repo: &str, tag: &str, layers: &[Layer]) -> Result<(), String> {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let blob = l
            .blob
            .as_deref()
            .ok_or_else(|| format!("layer {} has no blob to upload", l.digest))?;
        reg.put_blob(repo, blob)?;
        diff_ids.push(json!(l.digest));
        descriptors.push(json!({
            "mediaType": l.media_type,
            "size": blob.len(),
            "digest": l.digest,
            "annotations": l.annotations,
        }));
    }
    // cosign's empty-image config (pkg/oci/static, mutate.ConfigFile).
    let config = json!({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}
    })
    .to_string()
    .into_bytes();
    let config_digest = reg.put_blob(repo, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": descriptors,
    })
    .to_string()
    .into_bytes();
    reg.put_manifest(repo, tag, OCI_MANIFEST, &manifest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_verify_and_refuse_a_wrong_password_or_message() {
        let key = generate().expect("key");
        let public = load_public(&public_pem(key.verifying_key()).expect("pem")).expect("pub");
        let sig = sign(&key, b"payload");
        assert!(verify(&public, b"payload", &sig));
        assert!(!verify(&public, b"payload!", &sig));
        let other = generate().expect("key");
        assert!(!verify(other.verifying_key(), b"payload", &sig));
        let file = private_pem(&key, "hunter2").expect("pem");
        assert!(!file.contains("hunter2"));
        assert_eq!(
            load_private(&file, "wrong").err().as_deref(),
            Some("decrypt: encrypted: decryption failed")
        );
        let back = load_private(&file, "hunter2").expect("loads");
        assert!(verify(&public, b"x", &sign(&back, b"x")));
    }

    #[test]
    fn payload_and_tags_are_cosigns() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(tag(&d, "sig"), format!("sha256-{}.sig", "ab".repeat(32)));
        let p = String::from_utf8(simple_signing("r/x", &d)).expect("utf8");
        assert_eq!(
            p,
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r/x"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab");
    }
}
