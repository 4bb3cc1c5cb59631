//! Zone keys: BIND's key-pair files (`K<zone>.+<alg>+<tag>.key` and
//! `.private`, as `dnssec-keygen` writes them) read into ring key pairs, and
//! new pairs written in the same format (`ggon-ctl dnssec keygen`).
//!
//! Why BIND's format: it is what operators already have and what
//! `dnssec-keygen`, `dnssec-signzone`, `dnssec-dsfromkey` and Knot's
//! `keymgr import-bind` read, so keys move freely between ggond and the
//! rest of the toolbox. The private-key fields are base64 of the raw key
//! (ECDSA: the scalar; Ed25519: the seed; RSA: the PKCS#1 integers).

use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};

/// DNSSEC algorithm numbers we sign with (RFC 8624 recommendations).
pub const RSASHA256: u8 = 8;
pub const ECDSAP256SHA256: u8 = 13;
pub const ED25519: u8 = 15;

/// DNSKEY flags: zone key (256), plus SEP for a key-signing key (257).
pub const ZSK_FLAGS: u16 = 256;
pub const KSK_FLAGS: u16 = 257;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Format { path: PathBuf, why: KeyFormat },
    #[error("{path}: algorithm {alg} is not supported (use 8 RSASHA256, 13 ECDSAP256SHA256 or 15 ED25519)")]
    Algorithm { path: PathBuf, alg: u8 },
    #[error("{path}: the private key does not match the public key in the .key file")]
    Mismatch { path: PathBuf },
    #[error("{path}: the key is for {found}, not for the zone {zone}")]
    WrongZone {
        path: PathBuf,
        found: String,
        zone: String,
    },
}

/// What is wrong in a key file, or with a key made for one.
#[derive(Debug, thiserror::Error)]
pub enum KeyFormat {
    #[error("no {0} field")]
    NoField(String),
    #[error("{field}: bad base64: {source}")]
    Base64 {
        field: String,
        source: data_encoding::DecodeError,
    },
    #[error("not a usable RSA key: {0}")]
    Rsa(ring::error::KeyRejected),
    /// The `.key` file is not a master file.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ZoneFile(Vec<crate::proto::zonefile::FileError>),
    #[error("no DNSKEY record in the file")]
    NoDnskey,
    #[error("{0}")]
    Encode(Box<hickory_proto::ProtoError>),
    #[error("the DNSKEY record is incomplete")]
    Incomplete,
    #[error("RSA key generation failed: {0}")]
    RsaGeneration(rsa::Error),
    #[error("RSA key without CRT parameters")]
    NoCrt,
    /// The saved key set of a roll.
    #[error("{0}")]
    Saved(serde_json::Error),
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// One zone key: its DNSKEY and the means to sign with it.
pub struct ZoneKey {
    pub flags: u16,
    pub algorithm: u8,
    /// The DNSKEY public key field.
    pub public: Vec<u8>,
    pub tag: u16,
    /// Where it was read from (`K…` without extension), for status output.
    pub file: PathBuf,
    pair: Pair,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ZoneKey({} alg {} tag {})",
            self.flags, self.algorithm, self.tag
        )
    }
}

impl ZoneKey {
    pub fn is_ksk(&self) -> bool {
        self.flags & 1 == 1
    }

    /// DNSKEY RDATA: flags, protocol 3, algorithm, public key.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        dnskey_rdata(self.flags, self.algorithm, &self.public)
    }

    /// Sign `data` (the RRSIG input); the signature in DNSSEC's format.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            // FIXED signing gives r||s, which is RFC 6605's format.
            Pair::Ecdsa(k) => k.sign(&rng, data).expect("ECDSA signing").as_ref().to_vec(),
            Pair::Ed25519(k) => k.sign(data).as_ref().to_vec(),
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, data, &mut sig)
                    .expect("RSA signing");
                sig
            }
        }
    }

    /// Load `K….key` and `K….private` (the path with or without extension).
    pub fn load(path: &Path, zone: &str) -> Result<ZoneKey, KeyError> {
        let base = strip_ext(path);
        let key_path = base.with_extension_added("key");
        let priv_path = base.with_extension_added("private");
        let (owner, flags, algorithm, public) = read_public(&key_path)?;
        if !owner.eq_ignore_ascii_case(zone) {
            return Err(KeyError::WrongZone {
                path: key_path,
                found: owner,
                zone: zone.to_string(),
            });
        }
        let fields = read_private(&priv_path)?;
        let field = |name: &str| -> Result<Vec<u8>, KeyError> {
            let v = fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| KeyError::Format {
                    path: priv_path.clone(),
                    why: KeyFormat::NoField(name.to_string()),
                })?;
            BASE64
                .decode(v.as_bytes())
                .map_err(|source| KeyError::Format {
                    path: priv_path.clone(),
                    why: KeyFormat::Base64 {
                        field: name.to_string(),
                        source,
                    },
                })
        };
        let mismatch = || KeyError::Mismatch {
            path: priv_path.clone(),
        };
        let pair = match algorithm {
            ECDSAP256SHA256 => {
                // BIND writes the scalar as OpenSSL's minimal big-endian
                // bytes: a scalar with leading zero bytes (1 key in 256)
                // is shorter than 32, and ring wants exactly 32.
                let scalar = fixed_width(field("PrivateKey")?, 32);
                let mut point = vec![4u8];
                point.extend_from_slice(&public);
                let rng = SystemRandom::new();
                let k = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &scalar,
                    &point,
                    &rng,
                )
                .map_err(|_| mismatch())?;
                Pair::Ecdsa(k)
            }
            ED25519 => {
                let seed = field("PrivateKey")?;
                let k = Ed25519KeyPair::from_seed_and_public_key(&seed, &public)
                    .map_err(|_| mismatch())?;
                Pair::Ed25519(k)
            }
            RSASHA256 => {
                let ints: Vec<Vec<u8>> = [
                    "Modulus",
                    "PublicExponent",
                    "PrivateExponent",
                    "Prime1",
                    "Prime2",
                    "Exponent1",
                    "Exponent2",
                    "Coefficient",
                ]
                .iter()
                .map(|f| field(f))
                .collect::<Result<_, _>>()?;
                let der = rsa_private_der(&ints);
                let k = RsaKeyPair::from_der(&der).map_err(|e| KeyError::Format {
                    path: priv_path.clone(),
                    why: KeyFormat::Rsa(e),
                })?;
                if rsa_public(&ints[1], &ints[0]) != public {
                    return Err(mismatch());
                }
                Pair::Rsa(k)
            }
            alg => {
                return Err(KeyError::Algorithm {
                    path: key_path,
                    alg,
                })
            }
        };
        Ok(ZoneKey {
            tag: key_tag(&dnskey_rdata(flags, algorithm, &public)),
            flags,
            algorithm,
            public,
            file: base,
            pair,
        })
    }
}

trait AddExt {
    fn with_extension_added(&self, ext: &str) -> PathBuf;
}

impl AddExt for PathBuf {
    fn with_extension_added(&self, ext: &str) -> PathBuf {
        let mut s = self.clone().into_os_string();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    }
}

fn strip_ext(path: &Path) -> PathBuf {
    let s = path.to_string_lossy();
    for ext in [".key", ".private"] {
        if let Some(b) = s.strip_suffix(ext) {
            return PathBuf::from(b);
        }
    }
    path.to_path_buf()
}

/// DNSKEY RDATA from its fields.
pub fn dnskey_rdata(flags: u16, algorithm: u8, public: &[u8]) -> Vec<u8> {
    let mut r = flags.to_be_bytes().to_vec();
    r.push(3);
    r.push(algorithm);
    r.extend_from_slice(public);
    r
}

/// RFC 4034 appendix B, as hickory-proto computes it.
pub fn key_tag(rdata: &[u8]) -> u16 {
    hickory_proto::dnssec::rdata::DNSKEY::calculate_key_tag_internal(rdata)
}

/// The `.key` file's DNSKEY record (a master-file line, read by the zone
/// file parser): owner, flags, algorithm, public key.
fn read_public(path: &Path) -> Result<(String, u16, u8, Vec<u8>), KeyError> {
    use hickory_proto::serialize::binary::BinEncodable;
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |why: KeyFormat| KeyError::Format {
        path: path.to_path_buf(),
        why,
    };
    // The key's TTL does not matter here (the zone's sets the DNSKEY's).
    let root = hickory_proto::rr::Name::root();
    let parsed = crate::proto::zonefile::parse_with_ttl(&text, Some(path), &root, Some(0))
        .map_err(|e| bad(KeyFormat::ZoneFile(e)))?;
    let rec = parsed
        .iter()
        .find(|r| r.record_type() == hickory_proto::rr::RecordType::DNSKEY)
        .ok_or_else(|| bad(KeyFormat::NoDnskey))?;
    let rd = rec
        .data
        .to_bytes()
        .map_err(|e| bad(KeyFormat::Encode(Box::new(e))))?;
    if rd.len() < 5 {
        return Err(bad(KeyFormat::Incomplete));
    }
    Ok((
        rec.name.to_string(),
        u16::from_be_bytes([rd[0], rd[1]]),
        rd[3],
        rd[4..].to_vec(),
    ))
}

fn read_private(path: &Path) -> Result<Vec<(String, String)>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// RFC 3110 public key: exponent length, exponent, modulus.
fn rsa_public(e: &[u8], n: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if e.len() < 256 {
        out.push(e.len() as u8);
    } else {
        out.push(0);
        out.extend_from_slice(&(e.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(e);
    out.extend_from_slice(n);
    out
}

/// PKCS#1 RSAPrivateKey in DER from its eight integers (version 0 first).
fn rsa_private_der(ints: &[Vec<u8>]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, n: usize) {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let b = n.to_be_bytes();
            let skip = b.iter().take_while(|x| **x == 0).count();
            out.push(0x80 | (b.len() - skip) as u8);
            out.extend_from_slice(&b[skip..]);
        }
    }
    fn int(out: &mut Vec<u8>, v: &[u8]) {
        let v = &v[v
            .iter()
            .take_while(|x| **x == 0)
            .count()
            .min(v.len().saturating_sub(1))..];
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        out.push(2);
        len(out, v.len() + pad as usize);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::new();
    int(&mut body, &[0]);
    for v in ints {
        int(&mut body, v);
    }
    let mut out = vec![0x30];
    len(&mut out, body.len());
    out.extend(body);
    out
}

/// A new key pair for `zone` (ECDSA P-256 or Ed25519), written as BIND
/// files in `dir`. Returns the path without extension.
pub fn generate(zone: &str, algorithm: u8, ksk: bool, dir: &Path) -> Result<PathBuf, KeyError> {
    let rng = SystemRandom::new();
    let (private, public) = match algorithm {
        ECDSAP256SHA256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("key generation");
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                    .expect("fresh key");
            let public = pair.public_key().as_ref()[1..].to_vec();
            // ECPrivateKey (RFC 5915) inside the PKCS#8: version 1, then
            // the 32-byte scalar as an OCTET STRING.
            let d = doc.as_ref();
            let at = d
                .windows(5)
                .position(|w| w == [2, 1, 1, 4, 32])
                .expect("ring's PKCS#8 layout");
            (d[at + 5..at + 37].to_vec(), public)
        }
        ED25519 => {
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&rng, &mut seed).expect("randomness");
            let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
            (seed.to_vec(), pair.public_key().as_ref().to_vec())
        }
        RSASHA256 => return generate_rsa(zone, ksk, dir),
        alg => {
            return Err(KeyError::Algorithm {
                path: dir.to_path_buf(),
                alg,
            })
        }
    };
    write_pair(
        zone,
        algorithm,
        ksk,
        dir,
        &public,
        &[("PrivateKey", private)],
    )
}

/// A 2048-bit RSA pair (RSASHA256), made with the `rsa` crate.
fn generate_rsa(zone: &str, ksk: bool, dir: &Path) -> Result<PathBuf, KeyError> {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| {
        KeyError::Format {
            path: dir.to_path_buf(),
            why: KeyFormat::RsaGeneration(e),
        }
    })?;
    let b = |x: &rsa::BigUint| x.to_bytes_be();
    let primes = key.primes();
    let missing = || KeyError::Format {
        path: dir.to_path_buf(),
        why: KeyFormat::NoCrt,
    };
    let fields = vec![
        ("Modulus", b(key.n())),
        ("PublicExponent", b(key.e())),
        ("PrivateExponent", b(key.d())),
        ("Prime1", b(&primes[0])),
        ("Prime2", b(&primes[1])),
        ("Exponent1", b(key.dp().ok_or_else(missing)?)),
        ("Exponent2", b(key.dq().ok_or_else(missing)?)),
        (
            "Coefficient",
            b(&key.crt_coefficient().ok_or_else(missing)?),
        ),
    ];
    let public = rsa_public(&fields[1].1, &fields[0].1);
    write_pair(zone, RSASHA256, ksk, dir, &public, &fields)
}

/// Write `K<zone>.+<alg>+<tag>.key` and `.private` (BIND's v1.3 format).
fn write_pair(
    zone: &str,
    algorithm: u8,
    ksk: bool,
    dir: &Path,
    public: &[u8],
    private: &[(&str, Vec<u8>)],
) -> Result<PathBuf, KeyError> {
    let flags = if ksk { KSK_FLAGS } else { ZSK_FLAGS };
    let tag = key_tag(&dnskey_rdata(flags, algorithm, public));
    let zone = zone.trim_end_matches('.').to_ascii_lowercase() + ".";
    let base = dir.join(format!("K{zone}+{algorithm:03}+{tag:05}"));
    let name = match algorithm {
        ED25519 => "ED25519",
        RSASHA256 => "RSASHA256",
        _ => "ECDSAP256SHA256",
    };
    let now = crate::proto::dnssec::timestamp(unix_now());
    let key_text = format!(
        "; This is a {}-signing key, keyid {tag}, for {zone}\n; Created: {now}\n{zone} IN DNSKEY {flags} 3 {algorithm} {}\n",
        if ksk { "key" } else { "zone" },
        BASE64.encode(public)
    );
    let fields: String = private
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", BASE64.encode(v)))
        .collect();
    let priv_text = format!(
        "Private-key-format: v1.3\nAlgorithm: {algorithm} ({name})\n{fields}Created: {now}\nPublish: {now}\nActivate: {now}\n"
    );
    let write = |p: PathBuf, text: &str, mode: u32| -> Result<(), KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&p)
            .map_err(|source| KeyError::Write {
                path: p.clone(),
                source,
            })?;
        f.write_all(text.as_bytes())
            .map_err(|source| KeyError::Write { path: p, source })
    };
    write(base.with_extension_added("key"), &key_text, 0o644)?;
    write(base.with_extension_added("private"), &priv_text, 0o600)?;
    Ok(base)
}

/// A big-endian number as exactly `width` bytes: zeros added in front, or
/// leading zeros taken off (a longer number is left as it is, and refused
/// by the key's check).
fn fixed_width(mut n: Vec<u8>, width: usize) -> Vec<u8> {
    while n.len() > width && n[0] == 0 {
        n.remove(0);
    }
    if n.len() < width {
        let mut padded = vec![0; width - n.len()];
        padded.extend_from_slice(&n);
        return padded;
    }
    n
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIND writes an ECDSA scalar with leading zero bytes shorter than 32
    /// bytes (OpenSSL's minimal form); such a key must load (it failed one
    /// CI run in about 256 with "the private key does not match").
    #[test]
    fn an_ecdsa_key_whose_scalar_bind_wrote_short_loads() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SystemRandom::new();
        let (scalar, public) = (0..20_000)
            .find_map(|_| {
                let doc =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                        .unwrap();
                let d = doc.as_ref();
                let at = d.windows(5).position(|w| w == [2, 1, 1, 4, 32]).unwrap();
                let scalar = d[at + 5..at + 37].to_vec();
                (scalar[0] == 0).then(|| (scalar, pair.public_key().as_ref()[1..].to_vec()))
            })
            .expect("a scalar with a leading zero byte in 20,000 keys");
        let short: Vec<u8> = scalar.iter().copied().skip_while(|b| *b == 0).collect();
        assert!(short.len() < 32);
        let base = write_pair(
            "ggon.org",
            ECDSAP256SHA256,
            true,
            dir.path(),
            &public,
            &[("PrivateKey", short)],
        )
        .unwrap();
        let key = ZoneKey::load(&base, "ggon.org.").expect("the short scalar loads");
        assert!(key.is_ksk());
        assert_eq!(fixed_width(vec![0, 0, 1], 2), vec![0, 1]);
        assert_eq!(fixed_width(vec![1], 3), vec![0, 0, 1]);
    }
}
