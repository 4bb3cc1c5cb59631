//! TSIG (RFC 8945): keys, and signing/verifying whole messages.
//!
//! Owns: reading keys (BIND key files as written by `tsig-keygen`, or inline
//! config), verifying a signed request (key known? MAC right? time within
//! fudge?) and signing responses and requests. The MAC arithmetic is
//! hickory-proto's; this module decides what the outcome means. It must not
//! log secrets: keys print as their name only.

use std::collections::HashMap;
use std::path::Path;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{make_tsig_record, TsigAlgorithm, TsigError, TSIG};
use hickory_proto::rr::{DNSClass, Name, Record, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// Fudge: how far apart the two clocks may be (RFC 8945 recommends 300 s).
pub const FUDGE: u16 = 300;

#[derive(Clone)]
pub struct Key {
    pub name: Name,
    pub signer: TSigner,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.name)
    }
}

/// Keys by configured name.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    by_name: HashMap<String, Key>,
}

fn algorithm(s: &str) -> Result<TsigAlgorithm, KeyProblem> {
    match s.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(KeyProblem::Algorithm(other.to_string())),
    }
}

fn decode_b64(s: &str) -> Result<Vec<u8>, KeyProblem> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let body: Vec<u8> = clean.iter().copied().take_while(|&c| c != b'=').collect();
    if clean[body.len()..].iter().any(|&c| c != b'=') || body.len() % 4 == 1 {
        return Err(KeyProblem::Base64);
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c).ok_or(KeyProblem::Base64)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

/// What is wrong in a BIND key file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("expected `key`, found `{0}`")]
    NotAKey(String),
    #[error("key name missing")]
    NoName,
    /// A token the key statement needs (`{`, `;`, `}`) is not where it should be.
    #[error("key `{key}`: expected `{expected}`")]
    Expected { key: String, expected: &'static str },
    #[error("key `{key}`: unexpected `{found}`")]
    Unexpected { key: String, found: String },
    #[error("key `{0}`: missing `}}`")]
    Unclosed(String),
    #[error("key `{key}`: no {what}")]
    Incomplete { key: String, what: &'static str },
}

/// One key of a BIND key file: name, algorithm, secret (base64).
pub type BindKey = (String, String, String);

/// Parse BIND's key statement syntax: `key "name" { algorithm X; secret "Y"; };`,
/// several per file, with `#`, `//` and `/* */` comments.
pub fn parse_bind_keys(text: &str) -> Result<Vec<BindKey>, KeyFileError> {
    let mut toks = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' || (c == b'/' && b.get(i + 1) == Some(&b'/')) {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if c == b'"' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            toks.push(text[start..i.min(b.len())].to_string());
            i += 1;
        } else if matches!(c, b'{' | b'}' | b';') {
            toks.push((c as char).to_string());
            i += 1;
        } else {
            let start = i;
            while i < b.len()
                && !b[i].is_ascii_whitespace()
                && !matches!(b[i], b'{' | b'}' | b';' | b'"')
            {
                i += 1;
            }
            toks.push(text[start..i].to_string());
        }
    }
    let mut keys = Vec::new();
    let mut t = toks.iter().map(String::as_str).peekable();
    while let Some(tok) = t.next() {
        if tok != "key" {
            return Err(KeyFileError::NotAKey(tok.to_string()));
        }
        let name = t.next().ok_or(KeyFileError::NoName)?.to_string();
        let expected = |expected| KeyFileError::Expected {
            key: name.clone(),
            expected,
        };
        if t.next() != Some("{") {
            return Err(expected("{"));
        }
        let (mut alg, mut secret) = (None, None);
        loop {
            match t.next() {
                Some("}") => break,
                Some("algorithm") => alg = t.next().map(str::to_string),
                Some("secret") => secret = t.next().map(str::to_string),
                Some(other) => {
                    return Err(KeyFileError::Unexpected {
                        key: name.clone(),
                        found: other.to_string(),
                    })
                }
                None => return Err(KeyFileError::Unclosed(name.clone())),
            }
            if t.next() != Some(";") {
                return Err(expected(";"));
            }
        }
        if t.peek() == Some(&";") {
            t.next();
        }
        let incomplete = |what| KeyFileError::Incomplete {
            key: name.clone(),
            what,
        };
        let alg = alg.ok_or_else(|| incomplete("algorithm"))?;
        let secret = secret.ok_or_else(|| incomplete("secret"))?;
        keys.push((name, alg, secret));
    }
    Ok(keys)
}

/// Where one key comes from: a BIND key file (`tsig-keygen` output) that
/// holds a key of this name, or an inline secret and algorithm.
#[derive(Debug, Clone, Copy)]
pub struct KeySource<'a> {
    pub name: &'a str,
    pub file: Option<&'a Path>,
    pub algorithm: Option<&'a str>,
    pub secret: Option<&'a str>,
}

/// A configured key that cannot be used: which key, which file, why.
#[derive(Debug, thiserror::Error)]
#[error("key `{key}`: {}{why}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
pub struct KeyError {
    pub key: String,
    pub file: Option<std::path::PathBuf>,
    pub why: KeyProblem,
}

/// Why a configured key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("{0}")]
    Read(std::io::Error),
    #[error(transparent)]
    File(#[from] KeyFileError),
    #[error("not found in the file")]
    NotInFile,
    #[error("no secret")]
    NoSecret,
    #[error("algorithm `{0}` is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512)")]
    Algorithm(String),
    #[error("secret is not valid base64")]
    Base64,
    /// The key's name is not a DNS name.
    #[error("{0}")]
    Name(Box<hickory_proto::ProtoError>),
    /// hickory-proto refuses the key.
    #[error("{0}")]
    Signer(Box<hickory_proto::dnssec::DnsSecError>),
}

/// Why a message could not be signed or encoded.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{0}")]
    Encode(Box<hickory_proto::ProtoError>),
    #[error("{0}")]
    Sign(Box<hickory_proto::dnssec::DnsSecError>),
}

impl From<hickory_proto::ProtoError> for SignError {
    fn from(e: hickory_proto::ProtoError) -> SignError {
        SignError::Encode(Box::new(e))
    }
}

impl From<hickory_proto::dnssec::DnsSecError> for SignError {
    fn from(e: hickory_proto::dnssec::DnsSecError) -> SignError {
        SignError::Sign(Box::new(e))
    }
}

impl Keyring {
    /// Load every key. Errors name the key and the file.
    pub fn load<'a>(keys: impl IntoIterator<Item = KeySource<'a>>) -> Result<Keyring, KeyError> {
        let mut ring = Keyring::default();
        for k in keys {
            let name = k.name;
            let err = |file: Option<&Path>, why: KeyProblem| KeyError {
                key: name.to_string(),
                file: file.map(Path::to_path_buf),
                why,
            };
            let (alg, secret) = match (k.file, k.secret) {
                (Some(file), _) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| err(Some(file), KeyProblem::Read(e)))?;
                    warn_if_readable(file);
                    let found = parse_bind_keys(&text).map_err(|e| err(Some(file), e.into()))?;
                    let (_, alg, secret) = found
                        .into_iter()
                        .find(|(n, _, _)| n.trim_end_matches('.') == name.trim_end_matches('.'))
                        .ok_or_else(|| err(Some(file), KeyProblem::NotInFile))?;
                    (alg, secret)
                }
                (None, Some(secret)) => (
                    k.algorithm.unwrap_or("hmac-sha256").to_string(),
                    secret.to_string(),
                ),
                (None, None) => return Err(err(None, KeyProblem::NoSecret)),
            };
            let alg = algorithm(&alg).map_err(|e| err(k.file, e))?;
            let secret = decode_b64(&secret).map_err(|e| err(k.file, e))?;
            let key_name =
                Name::from_ascii(name).map_err(|e| err(None, KeyProblem::Name(Box::new(e))))?;
            let signer = TSigner::new(secret, alg, key_name.clone(), FUDGE)
                .map_err(|e| err(None, KeyProblem::Signer(Box::new(e))))?;
            ring.by_name.insert(
                name.to_string(),
                Key {
                    name: crate::proto::zone::fqdn_lower(&key_name),
                    signer,
                },
            );
        }
        Ok(ring)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&Key> {
        self.by_name.get(name)
    }

    /// The configured key whose DNS name is `name`.
    pub fn by_dns_name(&self, name: &Name) -> Option<(&str, &Key)> {
        self.by_name
            .iter()
            .find(|(_, k)| &k.name == name)
            .map(|(n, k)| (n.as_str(), k))
    }
}

fn warn_if_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(),
                "key file is readable by group or others; chmod 600 it");
        }
    }
}

pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Result of checking a request's TSIG.
pub enum Verified {
    /// Not signed.
    Unsigned,
    /// Signed with this configured key; `mac` is needed to sign the response.
    Ok {
        key_name: String,
        key: Key,
        mac: Vec<u8>,
        time: u64,
    },
    /// Signed but not acceptable: answer NOTAUTH with this TSIG error.
    Bad {
        error: TsigError,
        key: Option<Key>,
        key_dns_name: Name,
        time: u64,
    },
}

/// Verify a request's signature (RFC 8945 5.2), restricted to `allowed` keys.
pub fn verify_request(bytes: &[u8], msg: &Message, ring: &Keyring, allowed: &[String]) -> Verified {
    let Some(sig) = msg.signature() else {
        return Verified::Unsigned;
    };
    let key_dns_name = crate::proto::zone::fqdn_lower(&sig.name);
    let time = unix_time();
    let Some((key_name, key)) = ring
        .by_dns_name(&key_dns_name)
        .filter(|(n, _)| allowed.iter().any(|a| a == n))
    else {
        return Verified::Bad {
            error: TsigError::BadKey,
            key: None,
            key_dns_name,
            time,
        };
    };
    // RFC 8945 4.2: a TSIG's CLASS is ANY and its TTL 0. The MAC covers
    // them only as those constants (hickory hashes ANY and 0 whatever the
    // record says), so a record with others would be accepted with bytes
    // nobody signed (found by the `tsig` fuzz target: the class changed
    // from ANY to NONE, the message still verified).
    // The same for the header: the MAC covers hickory's re-encoding of it,
    // which drops the reserved Z bit, so a header whose flags do not come
    // back as received is refused (found by the `tsig` fuzz target: Z set
    // in a signed query, still verified).
    if sig.dns_class != DNSClass::ANY || sig.ttl != 0 || !flags_round_trip(bytes) {
        return Verified::Bad {
            error: TsigError::BadSig,
            key: Some(key.clone()),
            key_dns_name,
            time,
        };
    }
    match key.signer.verify_message_byte(bytes, None, true) {
        Ok((mac, signed_at, range)) => {
            if range.contains(&time) || range.end == time {
                Verified::Ok {
                    key_name: key_name.to_string(),
                    key: key.clone(),
                    mac,
                    time: signed_at,
                }
            } else {
                Verified::Bad {
                    error: TsigError::BadTime,
                    key: Some(key.clone()),
                    key_dns_name,
                    time,
                }
            }
        }
        Err(_) => Verified::Bad {
            error: TsigError::BadSig,
            key: Some(key.clone()),
            key_dns_name,
            time,
        },
    }
}

/// Whether hickory reads the header's flag bytes (QR, opcode, AA, TC,
/// RD, RA, Z, AD, CD, rcode) and writes them back unchanged.
fn flags_round_trip(bytes: &[u8]) -> bool {
    use hickory_proto::op::Header;
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
        return false;
    };
    let mut out = Vec::with_capacity(12);
    if header.emit(&mut BinEncoder::new(&mut out)).is_err() {
        return false;
    }
    out.get(2..4) == bytes.get(2..4)
}

/// Sign a multi-message answer (a zone transfer) as RFC 8945 5.3.1 wants:
/// the first message against the request's MAC with all TSIG variables, each
/// later one against the previous message's MAC with only the timers.
/// Unsigned or refused requests get their messages encoded as they are.
pub fn sign_chain(messages: &[Message], v: &Verified) -> Result<Vec<Vec<u8>>, SignError> {
    let Verified::Ok { key, mac, .. } = v else {
        return messages.iter().map(|m| Ok(m.to_vec()?)).collect();
    };
    let mut out = Vec::with_capacity(messages.len());
    let mut prev = mac.clone();
    for (i, m) in messages.iter().enumerate() {
        let mut bytes = m.to_vec()?;
        let now = unix_time();
        let mut tbs = Vec::with_capacity(bytes.len() + prev.len() + 10);
        tbs.extend_from_slice(&(prev.len() as u16).to_be_bytes());
        tbs.extend_from_slice(&prev);
        tbs.extend_from_slice(&bytes);
        let stub = TSIG::new(
            key.signer.algorithm().clone(),
            now,
            key.signer.fudge(),
            Vec::new(),
            m.metadata.id,
            None,
            Vec::new(),
        );
        if i == 0 {
            let mut enc = BinEncoder::new(&mut tbs);
            enc.set_offset(enc.len());
            stub.emit_tsig_for_mac(&mut enc, key.signer.signer_name())?;
        } else {
            tbs.extend_from_slice(&((now >> 32) as u16).to_be_bytes());
            tbs.extend_from_slice(&(now as u32).to_be_bytes());
            tbs.extend_from_slice(&key.signer.fudge().to_be_bytes());
        }
        let this_mac = key.signer.sign(&tbs)?;
        let rec = make_tsig_record(
            key.signer.signer_name().clone(),
            stub.set_mac(this_mac.clone()),
        );
        append_record(&mut bytes, &rec)?;
        out.push(bytes);
        prev = this_mac;
    }
    Ok(out)
}

/// Encode `resp` and append a TSIG record answering a verified request.
/// For BADSIG/BADKEY the TSIG is unsigned (RFC 8945 5.3.2).
pub fn sign_response(resp: &Message, context: TSigResponseContext) -> Result<Vec<u8>, SignError> {
    let mut bytes = resp.to_vec()?;
    let tsig = context.sign(&bytes)?;
    append_record(&mut bytes, &tsig)?;
    Ok(bytes)
}

fn append_record<R: hickory_proto::rr::RecordData>(
    bytes: &mut Vec<u8>,
    rec: &Record<R>,
) -> Result<(), SignError> {
    {
        let mut enc = BinEncoder::new(bytes);
        enc.set_offset(enc.len());
        rec.emit(&mut enc)?;
    }
    let ar = u16::from_be_bytes([bytes[10], bytes[11]]) + 1;
    bytes[10..12].copy_from_slice(&ar.to_be_bytes());
    Ok(())
}

/// The response context for a verification result.
pub fn response_context(v: &Verified, request_id: u16) -> Option<TSigResponseContext> {
    match v {
        Verified::Unsigned => None,
        Verified::Ok { key, mac, .. } => Some(TSigResponseContext::new(
            request_id,
            unix_time(),
            key.signer.clone(),
            mac.clone(),
            None,
        )),
        Verified::Bad {
            error: TsigError::BadTime,
            key: Some(key),
            time,
            ..
        } => Some(TSigResponseContext::new(
            request_id,
            *time,
            key.signer.clone(),
            Vec::new(),
            Some(TsigError::BadTime),
        )),
        Verified::Bad {
            key: Some(key),
            time,
            ..
        } => Some(TSigResponseContext::bad_signature(
            request_id,
            *time,
            key.signer.clone(),
        )),
        Verified::Bad {
            key_dns_name, time, ..
        } => Some(TSigResponseContext::unknown_key(
            request_id,
            *time,
            key_dns_name.clone(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed message whose TSIG record says another CLASS or TTL than
    /// ANY and 0, or whose header has the reserved Z bit set, is refused,
    /// though the MAC still matches (it hashes the constants and hickory's
    /// re-encoding of the header); the message as signed is accepted.
    #[test]
    fn a_tsig_of_another_class_or_ttl_is_refused() {
        use hickory_proto::op::{MessageType, OpCode, Query};
        use hickory_proto::serialize::binary::BinDecodable;
        let ring = Keyring::load([KeySource {
            name: "k",
            file: None,
            algorithm: None,
            secret: Some("c2VjcmV0c2VjcmV0c2VjcmV0"),
        }])
        .unwrap();
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("ggon.org.").unwrap(),
            hickory_proto::rr::RecordType::SOA,
        ));
        m.finalize(&ring.get("k").unwrap().signer, unix_time())
            .unwrap();
        let signed = m.to_vec().unwrap();
        let allowed = ["k".to_string()];
        let verify =
            |b: &[u8]| verify_request(b, &Message::from_bytes(b).unwrap(), &ring, &allowed);
        assert!(matches!(verify(&signed), Verified::Ok { .. }));
        // The TSIG record follows the question (`ggon.org.` SOA IN: 14
        // bytes after the header): its owner `k.` (3 bytes), TYPE (2), then
        // CLASS (2) and TTL (4).
        let class_at = 12 + 14 + 3 + 2;
        assert_eq!(signed[class_at..class_at + 2], [0, 255]);
        // CLASS NONE, TTL 1, the reserved Z bit set in the header.
        for (at, byte) in [(class_at + 1, 254), (class_at + 5, 1), (3, 0x40)] {
            let mut edited = signed.clone();
            edited[at] = byte;
            assert!(
                matches!(
                    verify(&edited),
                    Verified::Bad {
                        error: TsigError::BadSig,
                        ..
                    }
                ),
                "byte {at} set to {byte}: accepted"
            );
        }
    }

    #[test]
    fn reads_tsig_keygen_output() {
        let text = "key \"ggon-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n# other\nkey other. { algorithm hmac-sha512; secret \"YQ==\"; };";
        let keys = parse_bind_keys(text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].0, "ggon-key");
        assert_eq!(keys[0].1, "hmac-sha256");
        assert_eq!(decode_b64(&keys[0].2).unwrap(), b"secretsecretsecret");
        assert_eq!(decode_b64("YQ==").unwrap(), b"a");
        assert_eq!(decode_b64("YWI=").unwrap(), b"ab");
        assert!(decode_b64("Y!==").is_err());
        assert!(parse_bind_keys("key x { algorithm; }").is_err());
    }
}
