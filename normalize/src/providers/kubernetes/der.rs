//! Just enough X.509 to describe the certificates Kubernetes audit events carry: the PKCS#10
//! request in a CertificateSigningRequest's `spec.request` (subject, key) and the issued
//! certificate in `status.certificate` (serial, subject, issuer, validity, SANs, key). Both are
//! base64-encoded PEM.
//!
//! A bounded, allocation-light DER walker over a fixed structure: no recursion over input
//! depth, every length checked against the bytes left, every failure `None` (the caller then
//! leaves the columns NULL). Names are rendered as RFC 4514 strings (last RDN first, `,` `+`
//! `"` `\` `<` `>` `;` escaped), keys as `RSA_2048` / `EC_prime256v1` / `ED25519`, serials as
//! lower-case hex without the DER sign byte, SANs as DNS names, e-mail addresses, URIs
//! (SPIFFE IDs) and canonical IP addresses.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::values::checked_micros;

/// What a certificate request says.
#[derive(Debug, Default, PartialEq)]
pub(super) struct CsrInfo {
    pub(super) subject: Option<String>,
    pub(super) key_algorithm: Option<String>,
}

/// What a certificate says.
#[derive(Debug, Default, PartialEq)]
pub(super) struct CertInfo {
    pub(super) serial: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) sans: Option<Vec<String>>,
    pub(super) not_before: Option<i64>,
    pub(super) not_after: Option<i64>,
    pub(super) key_algorithm: Option<String>,
}

/// The request in a CSR's `spec.request` (base64 of a PEM `CERTIFICATE REQUEST`).
pub(super) fn csr_from_base64_pem(b64: &str) -> Option<CsrInfo> {
    let pem = base64(b64.as_bytes())?;
    let der = pem_block(&pem, b"CERTIFICATE REQUEST")?;
    let mut outer = Der::new(&der);
    let mut csr = Der::new(outer.expect(SEQUENCE)?);
    let mut info = Der::new(csr.expect(SEQUENCE)?);
    info.expect(INTEGER)?;
    let subject = info.expect(SEQUENCE).and_then(name);
    let key_algorithm = info.expect(SEQUENCE).and_then(key_algorithm);
    Some(CsrInfo { subject, key_algorithm })
}

/// The first certificate in a CSR's `status.certificate` (base64 of PEM `CERTIFICATE`s).
pub(super) fn certificate_from_base64_pem(b64: &str) -> Option<CertInfo> {
    let pem = base64(b64.as_bytes())?;
    let der = pem_block(&pem, b"CERTIFICATE")?;
    let mut outer = Der::new(&der);
    let mut cert = Der::new(outer.expect(SEQUENCE)?);
    let mut tbs = Der::new(cert.expect(SEQUENCE)?);
    let (mut tag, mut content) = tbs.next()?;
    if tag == 0xA0 {
        (tag, content) = tbs.next()?;
    }
    if tag != INTEGER {
        return None;
    }
    let serial = Some(hex(strip_sign(content)));
    tbs.expect(SEQUENCE)?;
    let issuer = tbs.expect(SEQUENCE).and_then(name);
    let (not_before, not_after) = match tbs.expect(SEQUENCE) {
        Some(v) => {
            let mut validity = Der::new(v);
            (validity.next().and_then(time), validity.next().and_then(time))
        }
        None => (None, None),
    };
    let subject = tbs.expect(SEQUENCE).and_then(name);
    let key_algorithm = tbs.expect(SEQUENCE).and_then(key_algorithm);
    let mut sans = None;
    while let Some((tag, content)) = tbs.next() {
        if tag == 0xA3 {
            sans = Der::new(content).expect(SEQUENCE).and_then(subject_alt_names);
        }
    }
    Some(CertInfo { serial, subject, issuer, sans, not_before, not_after, key_algorithm })
}

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

/// A cursor over consecutive DER TLVs.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next TLV's tag and content.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, after) = rest.split_at_checked(n)?;
            rest = after;
            bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let (content, after) = rest.split_at_checked(len)?;
        self.rest = after;
        Some((tag, content))
    }

    /// The next TLV's content if it has `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (t, content) = self.next()?;
        (t == tag).then_some(content)
    }
}

/// Standard base64 (whitespace ignored, padding optional).
fn base64(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The DER of the first PEM block labelled `label` (or `NEW <label>`).
fn pem_block(pem: &[u8], label: &[u8]) -> Option<Vec<u8>> {
    let begin = memchr::memmem::find_iter(pem, b"-----BEGIN ").find(|&at| {
        let after = pem.get(at + 11..).unwrap_or_default();
        let after = after.strip_prefix(b"NEW ").unwrap_or(after);
        after.strip_prefix(label).is_some_and(|a| a.starts_with(b"-----"))
    })?;
    let body_start = begin + memchr::memmem::find(pem.get(begin + 11..)?, b"-----")? + 16;
    let body = pem.get(body_start..)?;
    let end = memchr::memmem::find(body, b"-----END ")?;
    base64(body.get(..end)?)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An INTEGER's magnitude: the sign byte DER adds before a high bit removed.
fn strip_sign(bytes: &[u8]) -> &[u8] {
    match bytes {
        [0, next, ..] if next & 0x80 != 0 => bytes.get(1..).unwrap_or(bytes),
        _ => bytes,
    }
}

/// Dotted form of an OID's content bytes.
fn oid_string(bytes: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut value: u64 = 0;
    let mut first = true;
    for &b in bytes {
        value = value.checked_mul(128)? | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            if first {
                let (x, y) = if value < 80 { (value / 40, value % 40) } else { (2, value - 80) };
                let _ = write!(out, "{x}.{y}");
                first = false;
            } else {
                let _ = write!(out, ".{value}");
            }
            value = 0;
        }
    }
    (!first).then_some(out)
}

/// Short names of the attribute types seen in certificate names.
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x04] => "SN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0A] => "O",
        [0x55, 0x04, 0x0B] => "OU",
        [0x55, 0x04, 0x0C] => "title",
        [0x55, 0x04, 0x11] => "postalCode",
        [0x55, 0x04, 0x2A] => "GN",
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01] => "emailAddress",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

/// Text of a directory string; other types as `#` + hex of the content (RFC 4514).
fn string_value(tag: u8, content: &[u8]) -> String {
    match tag {
        0x0C | 0x13 | 0x16 | 0x14 | 0x1A => String::from_utf8_lossy(content).into_owned(),
        0x1E => {
            let units: Vec<u16> = content
                .chunks(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => format!("#{}", hex(content)),
    }
}

fn escape_into(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special && !value.starts_with('#') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// RFC 4514 string of a Name (content of its SEQUENCE).
fn name(content: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut seq = Der::new(content);
    while let Some(set) = seq.expect(SET) {
        let mut parts = Vec::new();
        let mut atvs = Der::new(set);
        while let Some(atv) = atvs.expect(SEQUENCE) {
            let mut atv = Der::new(atv);
            let oid = atv.expect(OID)?;
            let (tag, value) = atv.next()?;
            let mut part = match attribute_name(oid) {
                Some(n) => n.to_owned(),
                None => oid_string(oid)?,
            };
            part.push('=');
            escape_into(&mut part, &string_value(tag, value));
            parts.push(part);
        }
        rdns.push(parts.join("+"));
    }
    if rdns.is_empty() {
        return None;
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// Bits of an unsigned big-endian integer.
fn bit_length(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|&b| b != 0) {
        Some(i) => bytes.get(i..).unwrap_or_default(),
        None => return 0,
    };
    let lead = bytes.first().map_or(0, |b| b.leading_zeros() as usize);
    bytes.len() * 8 - lead
}

/// `RSA_2048`, `EC_prime256v1`, `ED25519`, … of a SubjectPublicKeyInfo (content).
fn key_algorithm(spki: &[u8]) -> Option<String> {
    let mut spki = Der::new(spki);
    let mut alg = Der::new(spki.expect(SEQUENCE)?);
    let oid = alg.expect(OID)?;
    let params = alg.next();
    let key = spki.expect(BIT_STRING);
    Some(match oid {
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01] => {
            let mut k = Der::new(key?.get(1..)?);
            let mut rsa = Der::new(k.expect(SEQUENCE)?);
            format!("RSA_{}", bit_length(rsa.expect(INTEGER)?))
        }
        [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01] => {
            let curve = match params {
                Some((OID, c)) => match c {
                    [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07] => "prime256v1".to_owned(),
                    [0x2B, 0x81, 0x04, 0x00, 0x22] => "secp384r1".to_owned(),
                    [0x2B, 0x81, 0x04, 0x00, 0x23] => "secp521r1".to_owned(),
                    other => oid_string(other)?,
                },
                _ => return Some("EC".to_owned()),
            };
            format!("EC_{curve}")
        }
        [0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01] => match params {
            Some((SEQUENCE, p)) => format!("DSA_{}", bit_length(Der::new(p).expect(INTEGER)?)),
            _ => "DSA".to_owned(),
        },
        [0x2B, 0x65, 0x70] => "ED25519".to_owned(),
        [0x2B, 0x65, 0x71] => "ED448".to_owned(),
        other => oid_string(other)?,
    })
}

/// UTCTime / GeneralizedTime (`Z` form, optional fraction) to UTC microseconds.
fn time((tag, content): (u8, &[u8])) -> Option<i64> {
    let text = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let full = match tag {
        0x17 => {
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy < 50 { "20" } else { "19" })
        }
        0x18 => text.to_owned(),
        _ => return None,
    };
    let dt = chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S%.f").ok()?;
    checked_micros(dt.and_utc().timestamp_micros())
}

/// The subjectAltName entries of an Extensions SEQUENCE (content).
fn subject_alt_names(extensions: &[u8]) -> Option<Vec<String>> {
    let mut exts = Der::new(extensions);
    while let Some(ext) = exts.expect(SEQUENCE) {
        let mut ext = Der::new(ext);
        if ext.expect(OID)? != [0x55, 0x1D, 0x11] {
            continue;
        }
        let (mut tag, mut value) = ext.next()?;
        if tag == 0x01 {
            (tag, value) = ext.next()?;
        }
        if tag != OCTET_STRING {
            return None;
        }
        let mut names = Der::new(Der::new(value).expect(SEQUENCE)?);
        let mut out = Vec::new();
        while let Some((tag, v)) = names.next() {
            match tag {
                0x81 | 0x82 | 0x86 => out.push(String::from_utf8_lossy(v).into_owned()),
                0x87 => match v.len() {
                    4 => out.push(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?).to_string()),
                    16 => out.push(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
        return Some(out);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj
    /// "/O=system:masters/CN=mallory"`, PEM then base64 as `spec.request` carries it.
    pub(crate) const CSR_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlINE1JR2VBZ0VBTUR3eEZ6QVZCZ05WQkFvTURuTjVjM1JsYlRwdFlYTjBaWEp6TVNFd0h3WURWUVFEREJodApZV3hzYjNKNUlDc2dZMjh1TENCcGJtTXVJRHdpWHo0d1dUQVRCZ2NxaGtqT1BRSUJCZ2dxaGtqT1BRTUJCd05DCkFBU00zekVSSkl2bzRLcEN5ek9YNms2RG4xQ0dnSnBtR3ZhdnFzOEY1NFlCeGIyWDN0UU51N21ZbGQvcVlDZEkKQmVhOXRUQ1JwOURmVEo4MlR6Y3VOaFZDb0FBd0NnWUlLb1pJemowRUF3SURTUUF3UmdJaEFOVkMydGFXUHF1QQo4emt2dXA4Rit1TUJtZUVvWmZlTWw2MGZkdUI0R1RKTUFpRUFpSk5FNmNjK0wzVFpmSDdZbTZ0dVdHM3ZJN21NCjVReUttOGQzTVhRdDcwTT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg==";

    #[test]
    fn csr_subject_is_rfc4514_with_escapes_and_key_is_named() {
        let info = csr_from_base64_pem(CSR_B64).expect("csr");
        assert_eq!(
            info.subject.as_deref(),
            Some(r#"CN=mallory \+ co.\, inc. \<\"_\>,O=system:masters"#)
        );
        assert_eq!(info.key_algorithm.as_deref(), Some("EC_prime256v1"));
    }

    /// An RSA-2048 node certificate signed by `CN=kubernetes`, serial 0x8a3f00112233, valid
    /// 2026-11-28T22:48:06Z for 365 days, SANs DNS, URI (SPIFFE), IPv4 and IPv6.
    pub(crate) const CERT_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSURlRENDQW1DZ0F3SUJBZ0lIQUlvL0FCRWlNekFOQmdrcWhraUc5dzBCQVFzRkFEQVZNUk13RVFZRFZRUUQKREFwcmRXSmxjbTVsZEdWek1CNFhEVEkyTVRFeU9ESXlORGd3TmxvWERUSTNNVEV5T0RJeU5EZ3dObG93TmpFVgpNQk1HQTFVRUNnd01jM2x6ZEdWdE9tNXZaR1Z6TVIwd0d3WURWUVFEREJSemVYTjBaVzA2Ym05a1pUcDNiM0pyClpYSXRNVENDQVNJd0RRWUpLb1pJaHZjTkFRRUJCUUFEZ2dFUEFEQ0NBUW9DZ2dFQkFOWjI5K09xNjZ3Y0U5TlMKU3RCQ0lSdWdtNDM4a1VpdlI4M1NVQW5iTjJWVGhoQ0s4MUhkdVAya1JPaXFvUGU4clVSMWtEaUd3WCtSZTRKNQpiNEgvMHpvUUhjQm00OTBVUlZDTUxOa2xQbVZIZnVhNnhRTzRUNDkzeWs3QTNCVHJPcmFUSVllaldQenpkZndNCkZwRmcrN2N0QVVWY2xINjRmWkpDc1ZWS2VrQkJYcjNPODNuZWh1LzdGeHdad3U2dmpGRTgvUkhzUWtHYkpHUG8KY1g5MC96bzVYbytzYjBhRWUyMUdnS2NjbXA1aTNJdkpFK0Z5WlZSTTRoUmRxMndOZHgvZmhNVWREMitLaHZiSwpXOGhzbzBid1ZmTnVJcUJiWkZaQWUxemRkbTdHNEU5Q2syWjlCOFJmZWwvaWY1am1leklxaTJtRzE0Y0J2OHh0CmhhaG8zYWtDQXdFQUFhT0JxekNCcURCbUJnTlZIUkVFWHpCZGdobDNiM0pyWlhJdE1TNWxlR0Z0Y0d4bExtbHUKZEdWeWJtRnNoaWh6Y0dsbVptVTZMeTlqYkhWemRHVnlMbXh2WTJGc0wyNXpMMlJsWm1GMWJIUXZjMkV2ZDJWaQpod1FLQUFBSGh4QWdBUTI0QUFBQUFBQUFBQUFBQUFBQk1CMEdBMVVkRGdRV0JCUlRJNUpsM3llQXYvWFVpSU4rCmJqRWljRmQ4eHpBZkJnTlZIU01FR0RBV2dCUzUvOUhCQ09qbWZJVXNWVkZoOFRGRk41UFlXakFOQmdrcWhraUcKOXcwQkFRc0ZBQU9DQVFFQWZ0Zkl1MmtxVzA2Y1Z5WGNoZ2V1U0diWngrN08xSi9sWnBXckJmbVN5SFg5Vy8yagpDSnJlbDYwUVRhenZVenFETG1jZnphSjhaYmpKSE9pelJXOXE5cU92US9obW81NkUzNU5jamE0a2lzbjNDZ3ZNCmlMOVBOMVlDTXFRVmd5NWF6Ykx1VVRMdkZkbis1NElYaWpPTWRJVUk4LzNOeGVTRHhDdHo4N2tBeFpsWEM1NHcKKzdsaDlDOUlua1RvN0ZPWXl1MjN2ak90Y1ZzMlhjRFN3RHVrRjJ1bUI4TGMyTkVGcmhBRzVIQXNXSDlNMWZ5VApHNmZIWTZkajYxWkJ4WmVneFdHTjZqODdhSTVObGpQUUdoYVNycHNTWlVTNWhvVW9XbXZXcm14aVl0REE2WE51CnplcWppb2d4WUxBdUFRdEdMeXpTWTVBdHFTdnN5a2F5VWlnSnpBPT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";

    #[test]
    fn certificate_details_are_read() {
        let c = certificate_from_base64_pem(CERT_B64).expect("certificate");
        assert_eq!(c.serial.as_deref(), Some("8a3f00112233"));
        assert_eq!(c.subject.as_deref(), Some("CN=system:node:worker-1,O=system:nodes"));
        assert_eq!(c.issuer.as_deref(), Some("CN=kubernetes"));
        assert_eq!(c.not_before, Some(1_795_906_086_000_000));
        assert_eq!(c.not_after, Some(1_795_906_086_000_000 + 365 * 86_400_000_000));
        assert_eq!(c.key_algorithm.as_deref(), Some("RSA_2048"));
        assert_eq!(
            c.sans,
            Some(vec![
                "worker-1.example.internal".to_owned(),
                "spiffe://cluster.local/ns/default/sa/web".to_owned(),
                "10.0.0.7".to_owned(),
                "2001:db8::1".to_owned(),
            ])
        );
    }

    #[test]
    fn garbage_and_truncated_input_yield_none() {
        // The corpus CSR is a PEM header with no body.
        assert_eq!(csr_from_base64_pem("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0="), None);
        assert_eq!(csr_from_base64_pem("%%%"), None);
        assert_eq!(certificate_from_base64_pem("bm90IGEgY2VydA=="), None);
        let mut der = Der::new(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]);
        assert_eq!(der.next(), None, "length beyond the input");
        let mut der = Der::new(&[0x30, 0x85, 1, 1, 1, 1, 1]);
        assert_eq!(der.next(), None, "length of more than 4 bytes");
    }

    #[test]
    fn helpers() {
        assert_eq!(
            oid_string(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D]).as_deref(),
            Some("1.2.840.113549")
        );
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01, 0x00]), 9);
        assert_eq!(hex(strip_sign(&[0x00, 0x80, 0x01])), "8001");
        assert_eq!(hex(strip_sign(&[0x00, 0x10])), "0010");
        assert_eq!(base64(b"aGVs\nbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(time((0x17, b"490101000000Z")), Some(2_493_072_000_000_000));
        assert_eq!(time((0x18, b"19700101000001Z")), Some(1_000_000));
        assert_eq!(time((0x17, b"garbage")), None);
    }
}
