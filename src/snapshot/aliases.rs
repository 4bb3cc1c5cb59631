//! Alias chains at compile time: from a CNAME's owner through the CNAMEs
//! and DNAMEs (RFC 6672: the CNAME each one synthesizes) inside the zone
//! to the name the chain ends at, the way BIND 9.18 follows them: at most
//! [`MAX_ALIASES`] aliases in one answer, and a chain that loops or goes
//! on beyond that is SERVFAIL (with the aliases it went through).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};

use super::compile::{Compiler, Resolved};
use super::encode::Rr;
use super::Dname;
use crate::proto::rdatas::Rd;
use crate::proto::zone::{fqdn_lower, RRset};

/// The aliases (CNAMEs, real or synthesized from a DNAME) one answer
/// goes through. BIND 9.18 restarts a lookup at most 11 times
/// (max-restarts), so its answers hold at most 12 aliases, and one that
/// would need a 13th lookup is SERVFAIL; NSD goes further, and answers a
/// loop NOERROR. Where they differ ggond answers as BIND does.
pub const MAX_ALIASES: usize = 12;

/// One step of a chain.
pub(super) enum Link<'z> {
    /// A CNAME RRset and its owner.
    Cname(Name, &'z RRset),
    /// A DNAME above `from`, and the CNAME it synthesizes from `from`
    /// (None when the new name would be longer than 255 octets).
    Dname {
        owner: &'z Name,
        set: &'z RRset,
        from: Name,
        cname: Option<Rd>,
    },
}

/// How a chain ends.
pub(super) enum End<'z> {
    /// At `name`, resolved as this.
    At(Name, Resolved<'z>),
    /// A loop, or more aliases than [`MAX_ALIASES`]: SERVFAIL.
    TooLong,
    /// A DNAME's substitution longer than 255 octets: YXDOMAIN.
    TooLongName,
}

/// The name `name` (below the DNAME owner `owner`) becomes with the
/// owner's suffix replaced by `target`; None when it would be too long.
pub(super) fn substitute(name: &Name, owner: &Name, target: &Name) -> Option<Name> {
    // iter(), not num_labels(), which leaves out a wildcard's `*`.
    let keep = name.iter().count() - owner.iter().count();
    let prefix = Name::from_labels(name.iter().take(keep)).ok()?;
    prefix.append_domain(target).ok().map(|n| fqdn_lower(&n))
}

/// The DNAME owner strictly above `name`, if any.
pub(super) fn dname_owner_above<'a>(
    dnames: &'a BTreeMap<Name, Arc<Dname>>,
    name: &Name,
) -> Option<&'a Name> {
    if dnames.is_empty() || name.is_root() {
        return None;
    }
    let mut n = name.base_name();
    loop {
        if let Some((owner, _)) = dnames.get_key_value(&n) {
            return Some(owner);
        }
        if n.is_root() {
            return None;
        }
        n = n.base_name();
    }
}

/// The DNAME's target, lowercase.
pub(super) fn dname_target(set: &RRset) -> Option<Name> {
    let wire = set.rdatas.first()?.to_bytes().ok()?;
    let mut d = BinDecoder::new(&wire);
    Name::read(&mut d).ok().map(|n| fqdn_lower(&n))
}

fn cname_target(set: &RRset) -> Name {
    match set.rdatas.first().as_deref() {
        Some(RData::CNAME(c)) => fqdn_lower(&c.0),
        _ => unreachable!("a CNAME RRset holds CNAME data"),
    }
}

impl<'z> Compiler<'z> {
    /// The chain from `name`, the owner of `cname`.
    pub(super) fn aliases(&self, name: &Name, cname: &'z RRset) -> (Vec<Link<'z>>, End<'z>) {
        let mut links = vec![Link::Cname(name.clone(), cname)];
        let mut seen = BTreeSet::from([name.clone()]);
        let mut target = cname_target(cname);
        loop {
            if links.len() >= MAX_ALIASES || !seen.insert(target.clone()) {
                return (links, End::TooLong);
            }
            match self.resolve(&target) {
                Resolved::Data(t) if t.contains_key(&RecordType::CNAME) => {
                    let set = &t[&RecordType::CNAME];
                    links.push(Link::Cname(target, set));
                    target = cname_target(set);
                }
                Resolved::Below(owner) => {
                    let set = &self.zone.rrsets[owner][&RecordType::DNAME];
                    let Some(to) = dname_target(set) else {
                        return (links, End::At(target, Resolved::Elsewhere));
                    };
                    let next = substitute(&target, owner, &to);
                    let cname = next.clone().map(|n| Rd::from(RData::CNAME(CNAME(n))));
                    links.push(Link::Dname {
                        owner,
                        set,
                        from: target,
                        cname,
                    });
                    match next {
                        Some(n) => target = n,
                        None => return (links, End::TooLongName),
                    }
                }
                r => return (links, End::At(target, r)),
            }
        }
    }

    /// The records of a chain, in order (with signatures in DNSSEC mode;
    /// a synthesized CNAME has none, RFC 6672 5.3.1).
    pub(super) fn chain_records<'a>(&'a self, links: &'a [Link<'z>]) -> Vec<Rr<'a>> {
        let mut out = Vec::new();
        for link in links {
            match link {
                Link::Cname(owner, set) => out.extend(self.set(owner, RecordType::CNAME, set)),
                Link::Dname {
                    owner,
                    set,
                    from,
                    cname,
                } => {
                    out.extend(self.set(owner, RecordType::DNAME, set));
                    if let Some(rdata) = cname {
                        out.push(Rr {
                            owner: from,
                            ttl: set.ttl,
                            rdata,
                        });
                    }
                }
            }
        }
        out
    }
}

/// The names a chain reaching `target` goes on to through DNAMEs (each
/// one synthesized from the one before): the answers of the chain's
/// owner hold their data too (incremental.rs).
pub(super) fn synthesized_targets(
    zone: &crate::proto::zone::ZoneData,
    dnames: &BTreeMap<Name, Arc<Dname>>,
    target: &Name,
) -> Vec<Name> {
    let mut out = Vec::new();
    let mut t = target.clone();
    for _ in 0..MAX_ALIASES {
        let Some(owner) = dname_owner_above(dnames, &t) else {
            break;
        };
        let Some(to) = zone
            .rrsets
            .get(owner)
            .and_then(|types| types.get(&RecordType::DNAME))
            .and_then(dname_target)
        else {
            break;
        };
        let Some(next) = substitute(&t, owner, &to) else {
            break;
        };
        out.push(next.clone());
        t = next;
    }
    out
}
