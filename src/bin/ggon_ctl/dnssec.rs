//! `ggon-ctl dnssec keygen` (files, no daemon) and `ggon-ctl dnssec status`
//! (read over DNS from the server, so it shows what resolvers see: the keys
//! in the DNSKEY RRset, which of them sign, and the DS for the parent).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use data_encoding::{BASE64, HEXUPPER};
use ggon::sign::keys::{self, ECDSAP256SHA256, ED25519};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use serde_json::{json, Value};

use crate::client::{fail, ClientError};
use ggon::sign::roll::{RollKind, RollStep};
use ggon::sign::ZoneKeysView;

pub fn keygen(zone: &str, algorithm: &str, ksk: bool, dir: &Path) -> ExitCode {
    let alg = match algorithm.to_ascii_lowercase().as_str() {
        "ecdsap256sha256" | "13" => ECDSAP256SHA256,
        "ed25519" | "15" => ED25519,
        "rsasha256" | "8" => keys::RSASHA256,
        other => {
            return fail(format!(
                "--algorithm {other}: use ecdsap256sha256 (default), ed25519 or rsasha256"
            ))
        }
    };
    let origin = match Name::from_ascii(zone) {
        Ok(n) => n,
        Err(e) => return fail(format!("{zone}: not a zone name: {e}")),
    };
    // `--dir keys` for keys that do not exist yet: made, like mkdir -p.
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(format!("--dir {}: cannot create it: {e}", dir.display()));
    }
    let base = match keys::generate(zone, alg, ksk, dir) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let origin_text = format!("{}.", zone.trim_end_matches('.').to_ascii_lowercase());
    let key = match ggon::sign::ZoneKey::load(&base, &origin_text) {
        Ok(k) => k,
        Err(e) => return fail(format!("the new key does not load back: {e}")),
    };
    let ds = ggon::sign::ds_rdata(&ggon::proto::zone::fqdn_lower(&origin), &key);
    println!("{}.key", base.display());
    println!("{}.private (mode 0600)", base.display());
    println!(
        "{origin_text} IN DNSKEY {} 3 {} {}",
        key.flags,
        key.algorithm,
        BASE64.encode(&key.public)
    );
    if ksk {
        println!("{origin_text} IN DS {}", ds_text(&ds));
        println!("give the DS line to the parent zone once the zone is served signed");
    }
    println!(
        "add it to the zone's config, beside the zone's other keys (a KSK and a ZSK go together): \
         dnssec = {{ keys = [..., \"{}\"] }}",
        base.display()
    );
    ExitCode::SUCCESS
}

fn ds_text(ds: &[u8]) -> String {
    format!(
        "{} {} {} {}",
        u16::from_be_bytes([ds[0], ds[1]]),
        ds[2],
        ds[3],
        HEXUPPER.encode(&ds[4..])
    )
}

/// Why a zone's keys could not be read from the server.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("{0}")]
    Encode(Box<hickory_proto::ProtoError>),
    #[error(transparent)]
    Exchange(#[from] ggon::proto::client::ExchangeError),
    #[error("{server}: unreadable answer: {source}")]
    Unreadable {
        server: SocketAddr,
        source: hickory_proto::serialize::binary::DecodeError,
    },
}

async fn ask(server: SocketAddr, zone: &Name, t: RecordType) -> Result<Message, AskError> {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(zone.clone(), t));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    m.set_edns(edns);
    let wire = m.to_bytes().map_err(|e| AskError::Encode(Box::new(e)))?;
    let resp = ggon::proto::client::tcp_exchange(server, &wire, Duration::from_secs(5)).await?;
    Message::from_vec(&resp).map_err(|source| AskError::Unreadable { server, source })
}

/// One zone's keys and signatures as served.
async fn zone_status(server: SocketAddr, zone: &Name) -> Result<Value, AskError> {
    let keys_msg = ask(server, zone, RecordType::DNSKEY).await?;
    let soa_msg = ask(server, zone, RecordType::SOA).await?;
    let mut sig_tags = Vec::new();
    let mut earliest: Option<u32> = None;
    let mut keys = Vec::new();
    for m in [&keys_msg, &soa_msg] {
        for r in &m.answers {
            let Ok(b) = r.data.to_bytes() else { continue };
            match r.record_type() {
                RecordType::RRSIG if b.len() >= 18 => {
                    let exp = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                    earliest = Some(earliest.map_or(exp, |e| e.min(exp)));
                    sig_tags.push(u16::from_be_bytes([b[16], b[17]]));
                }
                RecordType::DNSKEY if b.len() >= 4 => keys.push(b),
                _ => {}
            }
        }
    }
    let zone_wire = ggon::snapshot::name_wire(zone);
    let list: Vec<Value> = keys
        .iter()
        .map(|k| {
            let tag = keys::key_tag(k);
            let flags = u16::from_be_bytes([k[0], k[1]]);
            let ksk = flags & 1 == 1;
            let ds = ggon::sign::ds_from_dnskey(&zone_wire, k);
            json!({
                "tag": tag,
                "algorithm": k[3],
                "flags": flags,
                "role": if ksk { "KSK" } else { "ZSK" },
                "signing": sig_tags.contains(&tag),
                "ds": ksk.then(|| format!("{zone} IN DS {}", ds_text(&ds))),
            })
        })
        .collect();
    Ok(json!({
        "zone": zone.to_string(),
        "signed": !keys.is_empty() && !sig_tags.is_empty(),
        "keys": list,
        "earliest_expiry": earliest.map(|e| ggon::sign::rrsig::timestamp(u64::from(e))),
    }))
}

pub async fn status(
    args: &ggon::cli::ctl::Args,
    zone: Option<&str>,
    server: Option<SocketAddr>,
    json_out: bool,
) -> ExitCode {
    let cfg_path = &args.config_file();
    let cfg = match ggon::config::Config::load(cfg_path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let Some(server) = server.or_else(|| cfg.server.listen.first().copied()) else {
        return fail(format!(
            "{}: no `listen` address to ask",
            cfg_path.display()
        ));
    };
    let mut zones: Vec<Name> = cfg.zones.iter().map(|z| z.name()).collect();
    if let Some(z) = zone {
        let want = Name::from_ascii(z).map(|n| ggon::proto::zone::fqdn_lower(&n));
        zones.retain(|n| {
            want.as_ref()
                .is_ok_and(|w| &ggon::proto::zone::fqdn_lower(n) == w)
        });
        if zones.is_empty() {
            return fail(format!("{z}: not a zone of {}", cfg_path.display()));
        }
    }
    let mut out = Vec::new();
    for z in &zones {
        match zone_status(server, z).await {
            Ok(v) => out.push(v),
            Err(e) => {
                return fail(format!(
                    "{z}: no answer to DNSKEY: {e} (is ggond running and listening there? \
                     --server asks another address)"
                ))
            }
        }
    }
    // Key states, rolls and the key policy: from ggond's control API (DNS
    // shows only what is published).
    let managed = managed_keys(args).await;
    for z in &mut out {
        match &managed {
            Ok(views) => {
                let name = z["zone"].as_str().unwrap_or("").to_string();
                if let Some(v) = views.iter().find(|v| v.zone == name) {
                    z["managed"] = serde_json::to_value(v).unwrap_or(Value::Null);
                }
            }
            Err(e) => z["managed_error"] = Value::String(e.to_string()),
        }
    }
    if json_out {
        println!("{}", Value::Array(out));
        return ExitCode::SUCCESS;
    }
    for z in &out {
        let name = z["zone"].as_str().unwrap_or("");
        if z["signed"] != Value::Bool(true) {
            println!("{name}  NOT SIGNED (no DNSKEY or no signatures served)");
            continue;
        }
        println!(
            "{name}  signed; earliest signature expiry {} UTC",
            z["earliest_expiry"].as_str().unwrap_or("?")
        );
        for k in z["keys"].as_array().into_iter().flatten() {
            println!(
                "  {} {:>5}  algorithm {:>2}  {}",
                k["role"].as_str().unwrap_or(""),
                k["tag"],
                k["algorithm"],
                if k["signing"] == Value::Bool(true) {
                    "signing"
                } else {
                    "published, not signing"
                }
            );
            if let Some(ds) = k["ds"].as_str() {
                println!("        DS for the parent: {ds}");
            }
        }
        match serde_json::from_value::<ZoneKeysView>(z["managed"].clone()) {
            Ok(v) => print_managed(&v),
            Err(_) => {
                if let Some(e) = z["managed_error"].as_str() {
                    println!("  rolls and key policy not shown: {e}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}

async fn managed_keys(args: &ggon::cli::ctl::Args) -> Result<Vec<ZoneKeysView>, ClientError> {
    let c = crate::client::client(args)?;
    let v = c.call(reqwest::Method::GET, "/v1/dnssec", None).await?;
    serde_json::from_value(v).map_err(ClientError::Unreadable)
}

fn when(t: u64) -> String {
    ggon::sign::readable(t)
}

fn span(s: u64) -> String {
    humantime::format_duration(Duration::from_secs(s)).to_string()
}

/// The key policy and the roll under way, as ggond holds them.
fn print_managed(v: &ZoneKeysView) {
    if let Some(p) = &v.policy {
        let mut line = format!("  key policy: ZSK lifetime {}", span(p.zsk_lifetime));
        if let Some(t) = p.next_zsk_roll {
            line += &format!(" (next roll {})", when(t));
        }
        match p.ksk_lifetime {
            Some(l) => {
                line += &format!(", KSK lifetime {}", span(l));
                if let Some(t) = p.next_ksk_roll {
                    line += &format!(" (next roll {})", when(t));
                }
            }
            None => line += ", KSK rolled by operator only",
        }
        println!("{line}");
        if !p.parent_servers.is_empty() {
            let servers: Vec<String> = p.parent_servers.iter().map(|s| s.to_string()).collect();
            println!(
                "  parent servers: {} (asked every {} during a KSK roll; then DS TTL + {})",
                servers.join(", "),
                span(p.check_interval),
                span(p.parent_propagation)
            );
        }
        if p.follows {
            println!(
                "  key policy run by the cluster's leader; this node signs with the keys it shares"
            );
        }
    }
    let Some(r) = &v.roll else {
        if v.policy.is_some() {
            println!("  no roll under way");
        }
        return;
    };
    let kind = match r.kind {
        RollKind::Zsk => "ZSK",
        RollKind::Ksk => "KSK",
    };
    let who = if r.auto { "key policy" } else { "operator" };
    let (step, next) = match r.step {
        RollStep::Introduced if r.kind == RollKind::Zsk => {
            ("new key published, not signing", "it signs")
        }
        RollStep::Introduced if r.parent.is_some() => {
            ("both keys sign the key set", "CDS/CDNSKEY name the new key")
        }
        RollStep::Introduced => (
            "both keys sign the key set; put the new DS in the parent",
            "the old key leaves",
        ),
        RollStep::Swapped => ("new key signs, old key retired", "the old key leaves"),
        RollStep::Submitted => (
            "CDS/CDNSKEY name the new key; waiting for the parent's DS",
            "the parent is asked",
        ),
        RollStep::DsSeen => (
            "the parent serves the new DS",
            "the old key and CDS/CDNSKEY leave",
        ),
    };
    println!(
        "  roll ({who}): {kind} {} -> {}: {step}; {next} at {}",
        r.old_tag,
        r.new_tag,
        when(r.next_at)
    );
    if let Some(c) = r.parent.as_ref().and_then(|g| g.last.as_ref()) {
        println!("  parent at {}: {}", when(c.at), c.summary(r.new_tag));
    }
}
