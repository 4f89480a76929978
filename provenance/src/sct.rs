//! The signing certificate's embedded SCT (RFC 6962 §3.3): a certificate transparency log of
//! the root promised to publish the precertificate, as sigstore-python's `verify_sct` checks.

use sha2::{Digest, Sha256};
use x509_parser::extensions::ParsedExtension;

use crate::cert::SigningCert;
use crate::root::{CertificateAuthority, TrustedRoot};
use crate::Error;

/// 1.3.6.1.4.1.11129.2.4.2, the embedded SCT list extension, as DER OID content octets.
const SCT_LIST: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];
/// 1.3.6.1.4.1.11129.2.4.4, the EKU of a precertificate signing certificate.
const PRECERT_SIGNING: &str = "1.3.6.1.4.1.11129.2.4.4";

/// TLS `HashAlgorithm.sha256` and `SignatureAlgorithm.ecdsa` (RFC 5246 §7.4.1.4.1).
const SHA256: u8 = 4;

pub(crate) fn verify(
    cert: &SigningCert<'_>,
    ca: &CertificateAuthority,
    root: &TrustedRoot,
) -> Result<(), Error> {
    let bad = |why: &str| Error::Sct(why.into());
    let leaf = cert.parsed();
    let mut scts = Vec::new();
    for ext in leaf.extensions() {
        if let ParsedExtension::SCT(list) = ext.parsed_extension() {
            scts.extend(list.iter());
        }
    }
    let [sct] = scts.as_slice() else {
        return Err(bad("the certificate does not embed exactly one SCT"));
    };
    if sct.version.0 != 0 {
        return Err(bad("not a v1 SCT"));
    }
    if sct.signature.hash_alg_id != SHA256 {
        return Err(bad("hash algorithm is not SHA-256"));
    }
    let key = root
        .ct_key(sct.id.key_id)
        .ok_or_else(|| bad("from a CT log the trusted root does not name"))?;

    // The precertificate's issuer is the certificate that issued this one (its CA chain's
    // first), whose key hash the SCT covers.
    let Some(issuer_der) = ca.chain.first() else {
        return Err(bad("the CA has no certificate"));
    };
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der.as_ref())
        .map_err(|_| bad("the issuing CA certificate does not parse"))?;
    if issuer.subject().as_raw() != leaf.issuer().as_raw() {
        return Err(bad("the CA's first certificate is not the issuer"));
    }
    if let Ok(Some(eku)) = issuer.extended_key_usage() {
        if eku
            .value
            .other
            .iter()
            .any(|o| o.to_id_string() == PRECERT_SIGNING)
        {
            return Err(bad("issued through a precertificate signing certificate"));
        }
    }
    let issuer_key_hash = Sha256::digest(issuer.public_key().raw);
    let tbs =
        precert_tbs(leaf.tbs_certificate.as_ref()).ok_or_else(|| bad("malformed certificate"))?;

    // `digitally-signed struct` of RFC 6962 §3.2 for a precert_entry.
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|l| *l < 1 << 24)
        .ok_or_else(|| bad("certificate too large"))?;
    let ext_len = u16::try_from(sct.extensions.0.len()).map_err(|_| bad("extensions too large"))?;
    let mut signed = Vec::with_capacity(tbs.len() + 64);
    signed.extend([0u8, 0u8]); // sct_version v1, signature_type certificate_timestamp
    signed.extend(sct.timestamp.to_be_bytes());
    signed.extend([0u8, 1u8]); // entry_type precert_entry
    signed.extend_from_slice(&issuer_key_hash);
    signed.extend(&tbs_len.to_be_bytes()[1..]);
    signed.extend_from_slice(&tbs);
    signed.extend(ext_len.to_be_bytes());
    signed.extend_from_slice(sct.extensions.0);
    if key.verify(&signed, sct.signature.data) {
        Ok(())
    } else {
        Err(bad("signature does not verify"))
    }
}

/// One DER element: (tag, content, the whole element, what follows).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Reads one DER element. Low tag numbers only, definite lengths up to 2^24: all a
/// TBSCertificate's top levels use.
fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| l << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((tag, &rest[..len], &input[..header + len], &rest[len..]))
}

fn element(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    match len {
        0..0x80 => out.push(len as u8),
        0x80..0x100 => out.extend([0x81, len as u8]),
        0x100..0x10000 => out.extend([0x82, (len >> 8) as u8, len as u8]),
        _ => out.extend([0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// The TBSCertificate with its one SCT list extension removed: what the CT log signed.
pub(crate) fn precert_tbs(tbs: &[u8]) -> Option<Vec<u8>> {
    let (0x30, mut fields, _, []) = tlv(tbs)? else {
        return None;
    };
    let mut out = Vec::with_capacity(tbs.len());
    let mut removed = 0;
    while !fields.is_empty() {
        let (tag, content, whole, rest) = tlv(fields)?;
        if tag == 0xa3 {
            let (0x30, mut exts, _, []) = tlv(content)? else {
                return None;
            };
            let mut kept = Vec::with_capacity(exts.len());
            while !exts.is_empty() {
                let (0x30, ext, whole_ext, rest) = tlv(exts)? else {
                    return None;
                };
                let (0x06, oid, _, _) = tlv(ext)? else {
                    return None;
                };
                if oid == SCT_LIST {
                    removed += 1;
                } else {
                    kept.extend_from_slice(whole_ext);
                }
                exts = rest;
            }
            out.extend(element(0xa3, &element(0x30, &kept)));
        } else {
            out.extend_from_slice(whole);
        }
        fields = rest;
    }
    (removed == 1).then(|| element(0x30, &out))
}
