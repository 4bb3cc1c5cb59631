//! Propagation check: do these DNS servers already answer a service name with
//! the addresses we expect, and how long may a cache keep what they said?
//!
//! Owns: asking each server for the A and AAAA records of one name (UDP, with
//! retransmits and a TCP retry when the answer is truncated), following a
//! CNAME chain inside the answer, and comparing the address set with the
//! expected one.
//!
//! It must not change anything (queries only), decide what is expected (the
//! caller passes the active target's addresses), or contact anything but
//! the servers it is given.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::Serialize;
use tokio::net::TcpStream;

use ggon::proto::client::{read_frame, write_frame};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What one server said.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCheck {
    pub server: SocketAddr,
    /// A and AAAA addresses of the name (after any CNAME chain), sorted.
    pub answers: Vec<IpAddr>,
    /// The smallest TTL in what the server returned (answer records, CNAMEs
    /// on the way, or the negative-caching TTL of an empty answer): how long
    /// a cache may keep this answer. None when nothing carried a TTL.
    pub ttl: Option<u32>,
    /// The server answered both queries and its address set equals the
    /// expected set.
    pub current: bool,
    /// Why the server could not be checked (timeout, SERVFAIL, ...); for one
    /// failed type, prefixed with it ("AAAA: ...").
    pub error: Option<String>,
}

/// Check `fqdn` at every server concurrently, each bounded by `timeout`.
/// Results are in the order of `servers`.
pub async fn verify(
    fqdn: &Name,
    expected: &[IpAddr],
    servers: &[SocketAddr],
    timeout: Duration,
) -> Vec<ServerCheck> {
    let expected: BTreeSet<IpAddr> = expected.iter().copied().collect();
    let mut tasks = JoinSet::new();
    for (i, &server) in servers.iter().enumerate() {
        let fqdn = fqdn.clone();
        let expected = expected.clone();
        tasks.spawn(async move { (i, check_server(&fqdn, &expected, server, timeout).await) });
    }
    let mut results: Vec<Option<ServerCheck>> = vec![None; servers.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, check)) = done {
            results[i] = Some(check);
        }
    }
    results
        .into_iter()
        .zip(servers)
        .map(|(r, &server)| {
            r.unwrap_or_else(|| ServerCheck {
                server,
                answers: Vec::new(),
                ttl: None,
                current: false,
                error: Some("check aborted".into()),
            })
        })
        .collect()
}

/// Why one server's answer for one type is not known.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error("cannot encode query: {0}")]
    Encode(Box<hickory_proto::ProtoError>),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("rcode {}", ggon::proto::codes::rcode_label(*.0))]
    Rcode(u16),
    /// `what`: the step (`bind`, `send`, `TCP connect`, ...).
    #[error("{}", io_error(what, error))]
    Io {
        what: &'static str,
        error: io::Error,
    },
    #[error("malformed TCP response: {0}")]
    Malformed(hickory_proto::serialize::binary::DecodeError),
}

fn io(what: &'static str) -> impl FnOnce(io::Error) -> LookupError {
    move |error| LookupError::Io { what, error }
}

/// Addresses of one type and the smallest TTL involved.
#[derive(Debug, Default, PartialEq)]
struct Lookup {
    addrs: Vec<IpAddr>,
    ttl: Option<u32>,
}

async fn check_server(
    fqdn: &Name,
    expected: &BTreeSet<IpAddr>,
    server: SocketAddr,
    timeout: Duration,
) -> ServerCheck {
    let deadline = Instant::now() + timeout;
    let (a, aaaa) = tokio::join!(
        lookup(fqdn, RecordType::A, server, deadline, timeout),
        lookup(fqdn, RecordType::AAAA, server, deadline, timeout)
    );
    let mut answers = BTreeSet::new();
    let mut ttl: Option<u32> = None;
    let mut errors = Vec::new();
    for (rtype, result) in [("A", a), ("AAAA", aaaa)] {
        match result {
            Ok(l) => {
                answers.extend(l.addrs);
                ttl = min_ttl(ttl, l.ttl);
            }
            Err(e) => errors.push(format!("{rtype}: {e}")),
        }
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    ServerCheck {
        server,
        current: error.is_none() && answers == *expected,
        answers: answers.into_iter().collect(),
        ttl,
        error,
    }
}

fn min_ttl(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn lookup(
    fqdn: &Name,
    rtype: RecordType,
    server: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<Lookup, LookupError> {
    let id: u16 = rand::random();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    // RD set: a resolver then answers from its cache (what its clients get);
    // an authoritative server ignores it.
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(fqdn.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let wire = query
        .to_vec()
        .map_err(|e| LookupError::Encode(Box::new(e)))?;

    let exchange = async {
        let resp = udp_exchange(server, &wire, &query, timeout).await?;
        if resp.metadata.truncation {
            tcp_exchange(server, &wire, &query).await
        } else {
            Ok(resp)
        }
    };
    let resp = tokio::time::timeout_at(deadline, exchange)
        .await
        .map_err(|_| LookupError::Timeout(timeout))??;
    match resp.metadata.response_code {
        ResponseCode::NoError => Ok(extract(&resp, fqdn, rtype)),
        rcode => Err(LookupError::Rcode(u16::from(rcode))),
    }
}

/// Is `resp` the answer to `query`?
fn answers_query(resp: &Message, query: &Message) -> bool {
    resp.metadata.id == query.metadata.id
        && resp.metadata.message_type == MessageType::Response
        && resp.queries.len() == 1
        && resp.queries[0].name() == query.queries[0].name()
        && resp.queries[0].query_type() == query.queries[0].query_type()
}

fn io_error(what: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        // ICMP port unreachable on UDP; "refused" alone would read like REFUSED.
        return format!("{what}: port unreachable / connection refused");
    }
    format!("{what}: {e}")
}

/// One UDP exchange on a connected socket, retransmitting now and then
/// (datagrams get lost) until the caller's deadline.
async fn udp_exchange(
    server: SocketAddr,
    wire: &[u8],
    query: &Message,
    timeout: Duration,
) -> Result<Message, LookupError> {
    let socket = ggon::proto::client::connected_udp(server)
        .await
        .map_err(|(what, e)| io(what)(e))?;
    let resend_every = (timeout / 3).max(Duration::from_millis(100));
    let mut buf = vec![0u8; 65535];
    loop {
        socket.send(wire).await.map_err(io("send"))?;
        let resend_at = Instant::now() + resend_every;
        loop {
            let n = match tokio::time::timeout_at(resend_at, socket.recv(&mut buf)).await {
                Err(_) => break, // retransmit
                Ok(Err(e)) => return Err(io("receive")(e)),
                Ok(Ok(n)) => n,
            };
            // Late answers to an earlier query, spoofs, garbage: skip.
            if let Ok(resp) = Message::from_vec(&buf[..n]) {
                if answers_query(&resp, query) {
                    return Ok(resp);
                }
            }
        }
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    wire: &[u8],
    query: &Message,
) -> Result<Message, LookupError> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(io("TCP connect"))?;
    write_frame(&mut stream, wire)
        .await
        .map_err(io("TCP send"))?;
    loop {
        let body = read_frame(&mut stream).await.map_err(io("TCP receive"))?;
        let resp = Message::from_vec(&body).map_err(LookupError::Malformed)?;
        if answers_query(&resp, query) {
            return Ok(resp);
        }
    }
}

/// The addresses of `rtype` for `qname` in a NOERROR response, following a
/// CNAME chain within the answer section; the TTL is the smallest of the
/// records used, or for an empty answer the negative-caching TTL of the SOA
/// in the authority section (min of its TTL and MINIMUM, RFC 2308).
fn extract(resp: &Message, qname: &Name, rtype: RecordType) -> Lookup {
    let mut names = vec![qname.clone()];
    let mut ttl = None;
    // Each pass adds at most one link; the answer bounds the chain length.
    for _ in 0..resp.answers.len() {
        let next = resp.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if names.last() == Some(&r.name) && !names.contains(&target.0) => {
                Some((target.0.clone(), r.ttl))
            }
            _ => None,
        });
        let Some((target, t)) = next else { break };
        names.push(target);
        ttl = min_ttl(ttl, Some(t));
    }
    let mut addrs = Vec::new();
    for r in &resp.answers {
        if !names.contains(&r.name) {
            continue;
        }
        let ip = match (&r.data, rtype) {
            (RData::A(a), RecordType::A) => IpAddr::V4(a.0),
            (RData::AAAA(a), RecordType::AAAA) => IpAddr::V6(a.0),
            _ => continue,
        };
        addrs.push(ip);
        ttl = min_ttl(ttl, Some(r.ttl));
    }
    if addrs.is_empty() {
        for r in &resp.authorities {
            if let RData::SOA(soa) = &r.data {
                ttl = min_ttl(ttl, Some(r.ttl.min(soa.minimum)));
            }
        }
    }
    Lookup { addrs, ttl }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
    use hickory_proto::rr::Record;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    type Answer = Arc<dyn Fn(&Message) -> Message + Send + Sync>;

    fn reply_to(q: &Message) -> Message {
        let mut r = Message::response(q.metadata.id, q.metadata.op_code);
        r.metadata.authoritative = true;
        r.add_queries(q.queries.clone());
        r
    }

    /// The fixed A record responder: `cic.ggon.test. 300 A 192.0.2.1`,
    /// no AAAA (NODATA with an SOA whose negative TTL is 600).
    fn fixed_a() -> Answer {
        Arc::new(|q: &Message| {
            let mut r = reply_to(q);
            let qn = q.queries[0].name().clone();
            match q.queries[0].query_type() {
                RecordType::A => {
                    r.add_answer(Record::from_rdata(
                        qn,
                        300,
                        RData::A(A("192.0.2.1".parse().unwrap())),
                    ));
                }
                _ => {
                    let soa = SOA::new(
                        name("ns.ggon.test."),
                        name("hostmaster.ggon.test."),
                        1,
                        3600,
                        600,
                        86400,
                        600,
                    );
                    r.authorities.push(Record::from_rdata(
                        name("ggon.test."),
                        3600,
                        RData::SOA(soa),
                    ));
                }
            }
            r
        })
    }

    /// A UDP responder on 127.0.0.1; `drop_first` datagrams are ignored
    /// (lost), and with `decoy` a wrong-ID answer precedes each real one.
    async fn udp_server(
        answer: Answer,
        drop_first: usize,
        decoy: bool,
    ) -> (SocketAddr, Arc<AtomicUsize>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if counter.fetch_add(1, Ordering::SeqCst) < drop_first {
                    continue;
                }
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let r = answer(&q);
                if decoy {
                    let mut wrong = r.clone();
                    wrong.metadata.id = r.metadata.id.wrapping_add(1);
                    wrong.answers.clear();
                    wrong.add_answer(Record::from_rdata(
                        q.queries[0].name().clone(),
                        1,
                        RData::A(A("203.0.113.66".parse().unwrap())),
                    ));
                    let _ = socket.send_to(&wrong.to_vec().unwrap(), peer).await;
                }
                let _ = socket.send_to(&r.to_vec().unwrap(), peer).await;
            }
        });
        (addr, seen)
    }

    async fn bounded<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("test took too long")
    }

    const T: Duration = Duration::from_secs(3);

    #[tokio::test]
    async fn current_when_the_answer_matches() {
        bounded(async {
            let (server, _) = udp_server(fixed_a(), 0, false).await;
            let r = verify(&name("cic.ggon.test."), &[ip("192.0.2.1")], &[server], T).await;
            assert_eq!(r.len(), 1);
            let c = &r[0];
            assert_eq!(c.server, server);
            assert_eq!(c.answers, vec![ip("192.0.2.1")]);
            assert_eq!(c.error, None);
            assert!(c.current);
            // A 300, AAAA negative min(3600, 600): a cache may keep the old answer 300s.
            assert_eq!(c.ttl, Some(300));
        })
        .await;
    }

    #[tokio::test]
    async fn stale_when_the_answer_differs() {
        bounded(async {
            let (server, _) = udp_server(fixed_a(), 0, true).await;
            let expected = [ip("192.0.2.2")];
            let r = verify(&name("cic.ggon.test."), &expected, &[server], T).await;
            assert!(!r[0].current);
            // The decoy with the wrong ID was not taken for the answer.
            assert_eq!(r[0].answers, vec![ip("192.0.2.1")]);
            assert_eq!(r[0].error, None);
            // A superset is not current either.
            let expected = [ip("192.0.2.1"), ip("2001:db8::1")];
            let r = verify(&name("cic.ggon.test."), &expected, &[server], T).await;
            assert!(!r[0].current);
        })
        .await;
    }

    #[tokio::test]
    async fn lost_datagrams_are_retransmitted() {
        bounded(async {
            let (server, seen) = udp_server(fixed_a(), 2, false).await;
            let r = verify(&name("cic.ggon.test."), &[ip("192.0.2.1")], &[server], T).await;
            assert!(r[0].current, "{r:?}");
            assert!(seen.load(Ordering::SeqCst) >= 4);
        })
        .await;
    }

    #[tokio::test]
    async fn silent_and_closed_servers_are_errors_within_the_timeout() {
        bounded(async {
            let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let closed = {
                let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                s.local_addr().unwrap()
            };
            let (good, _) = udp_server(fixed_a(), 0, false).await;
            let servers = [silent.local_addr().unwrap(), good, closed];
            let started = Instant::now();
            let r = verify(
                &name("cic.ggon.test."),
                &[ip("192.0.2.1")],
                &servers,
                Duration::from_millis(500),
            )
            .await;
            assert!(started.elapsed() < Duration::from_secs(2));
            // In the order given.
            assert_eq!(r.iter().map(|c| c.server).collect::<Vec<_>>(), servers);
            let e = r[0].error.as_deref().unwrap();
            assert!(e.contains("A: no answer within 500ms"), "{e}");
            assert!(!r[0].current);
            assert!(r[1].current);
            assert!(r[2].error.is_some());
            assert!(!r[2].current);
        })
        .await;
    }

    #[tokio::test]
    async fn rcode_errors_are_reported() {
        bounded(async {
            let refuse: Answer = Arc::new(|q: &Message| {
                let mut r = reply_to(q);
                r.metadata.response_code = ResponseCode::Refused;
                r
            });
            let (server, _) = udp_server(refuse, 0, false).await;
            let r = verify(&name("cic.ggon.test."), &[], &[server], T).await;
            assert_eq!(
                r[0].error.as_deref(),
                Some("A: rcode REFUSED; AAAA: rcode REFUSED")
            );
            assert!(!r[0].current);
        })
        .await;
    }

    #[tokio::test]
    async fn cname_chain_and_both_families() {
        bounded(async {
            let answer: Answer = Arc::new(|q: &Message| {
                let mut r = reply_to(q);
                let qn = q.queries[0].name().clone();
                r.add_answer(Record::from_rdata(
                    qn,
                    120,
                    RData::CNAME(CNAME(name("fra.ggon.test."))),
                ));
                let data = match q.queries[0].query_type() {
                    RecordType::A => RData::A(A("192.0.2.7".parse().unwrap())),
                    _ => RData::AAAA(AAAA("2001:db8::7".parse().unwrap())),
                };
                r.add_answer(Record::from_rdata(name("FRA.ggon.test."), 60, data));
                // Unrelated owner: ignored.
                r.add_answer(Record::from_rdata(
                    name("other.ggon.test."),
                    5,
                    RData::A(A("198.51.100.1".parse().unwrap())),
                ));
                r
            });
            let (server, _) = udp_server(answer, 0, false).await;
            let expected = [ip("2001:db8::7"), ip("192.0.2.7")];
            let r = verify(&name("cic.ggon.test."), &expected, &[server], T).await;
            assert_eq!(r[0].answers, vec![ip("192.0.2.7"), ip("2001:db8::7")]);
            assert!(r[0].current, "{r:?}");
            assert_eq!(r[0].ttl, Some(60));
        })
        .await;
    }

    #[tokio::test]
    async fn truncated_answers_are_retried_over_tcp() {
        bounded(async {
            // UDP says TC; TCP on the same port has the full answer.
            let tc: Answer = Arc::new(|q: &Message| {
                let mut r = reply_to(q);
                r.metadata.truncation = true;
                r
            });
            let (addr, _) = udp_server(tc, 0, false).await;
            let listener = TcpListener::bind(addr).await.unwrap();
            let full = fixed_a();
            tokio::spawn(async move {
                loop {
                    let Ok((mut s, _)) = listener.accept().await else {
                        return;
                    };
                    let full = full.clone();
                    tokio::spawn(async move {
                        let mut len = [0u8; 2];
                        s.read_exact(&mut len).await.unwrap();
                        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        s.read_exact(&mut body).await.unwrap();
                        let r = full(&Message::from_vec(&body).unwrap()).to_vec().unwrap();
                        let mut out = (r.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&r);
                        s.write_all(&out).await.unwrap();
                    });
                }
            });
            let r = verify(&name("cic.ggon.test."), &[ip("192.0.2.1")], &[addr], T).await;
            assert!(r[0].current, "{r:?}");
            assert_eq!(r[0].ttl, Some(300));
        })
        .await;
    }

    #[test]
    fn nodata_uses_the_negative_ttl() {
        let mut q = Message::new(1, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(name("cic.ggon.test."), RecordType::AAAA));
        let r = fixed_a()(&q);
        let l = extract(&r, &name("cic.ggon.test."), RecordType::AAAA);
        assert_eq!(
            l,
            Lookup {
                addrs: vec![],
                ttl: Some(600)
            }
        );
    }

    #[tokio::test]
    async fn no_servers_no_results() {
        assert!(verify(&name("x."), &[], &[], T).await.is_empty());
    }
}
