//! The `dns` check: one query over UDP, the answer's rcode compared.

use super::*;
use crate::config::DnsCheck;

pub(super) async fn check_dns(check: &DnsCheck, timeout: Duration) -> Verdict {
    let q = check
        .query
        .as_ref()
        .map_err(|bad| CheckFailure::Query(bad.clone()))?;
    let expected = u16::from(q.expect_rcode);
    let server = check.server;
    let id: u16 = rand::random();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    // Set like `dig` does, so the same check works against a resolver; an
    // authoritative server answers its own names whatever RD says.
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(q.qname.clone(), q.qtype));
    let wire = query.to_vec().map_err(CheckFailure::Encode)?;
    with_timeout(timeout, async {
        let rcode = dns_exchange(server, id, &wire).await?;
        if rcode == expected {
            Ok(format!("rcode {}", crate::proto::codes::rcode_label(rcode)))
        } else {
            Err(CheckFailure::Rcode {
                got: rcode,
                expected,
            })
        }
    })
    .await
}

/// Send `wire` to `server` over UDP and return the rcode of the first response
/// carrying `id`. The socket is connected, so only the server's datagrams
/// arrive; others with a wrong ID (late answers, spoofs) are skipped.
async fn dns_exchange(server: SocketAddr, id: u16, wire: &[u8]) -> Result<u16, CheckFailure> {
    let io = |what, error| CheckFailure::Io { what, error };
    let socket = crate::proto::client::connected_udp(server)
        .await
        .map_err(|(what, e)| io(what, e))?;
    socket.send(wire).await.map_err(|e| io("send", e))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                CheckFailure::PortUnreachable
            } else {
                io("receive", e)
            }
        })?;
        let datagram = &buf[..n];
        let carries_id =
            datagram.len() >= 2 && u16::from_be_bytes([datagram[0], datagram[1]]) == id;
        if !carries_id {
            continue;
        }
        match Message::from_vec(datagram) {
            Ok(resp) if resp.metadata.message_type == MessageType::Response => {
                return Ok(u16::from(resp.metadata.response_code));
            }
            Ok(_) => continue,
            Err(e) => return Err(CheckFailure::Malformed(e)),
        }
    }
}
