//! The flood over TCP: queries pipelined on each connection, length
//! prefixed, written as the socket takes them; a broken connection loses
//! what it had outstanding and is reconnected later.

use super::*;

impl Engine<'_> {
    pub(super) fn send_tcp(&mut self, ci: usize, n: usize) -> usize {
        let now = self.now();
        let conn = &mut self.conns[ci];
        let Link::Tcp(link) = &mut conn.link else {
            unreachable!()
        };
        if link.stream.is_none() {
            return 0;
        }
        let mut k = 0;
        while k < n && link.wbuf.len() - link.wpos < TCP_WRITE_HIGH {
            let qi = (self.next_seq % self.nq) as usize;
            let framed_len = self.wire.queries[qi].len as usize + 2;
            if link.wbuf.len() + framed_len > link.wbuf.capacity() {
                link.wbuf.drain(..link.wpos);
                link.wpos = 0;
                if link.wbuf.len() + framed_len > link.wbuf.capacity() {
                    break;
                }
            }
            let id = conn.inflight.alloc_id();
            self.wire.set_id(qi, id);
            link.wbuf.extend_from_slice(self.wire.framed(qi));
            conn.inflight.insert(id, qi as u32, now);
            self.next_seq += 1;
            k += 1;
        }
        self.outstanding += k;
        self.stats.sent += k as u64;
        if k > 0 {
            self.flush_tcp(ci);
        }
        k
    }

    /// Writes what the connection has queued; on failure drops it.
    pub(super) fn flush_tcp(&mut self, ci: usize) -> bool {
        let Link::Tcp(link) = &mut self.conns[ci].link else {
            return false;
        };
        let Some(stream) = link.stream.as_mut() else {
            return false;
        };
        let mut wrote = false;
        let mut failed = false;
        while link.wpos < link.wbuf.len() {
            match stream.write(&link.wbuf[link.wpos..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(m) => {
                    link.wpos += m;
                    wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if link.wpos == link.wbuf.len() {
            link.wbuf.clear();
            link.wpos = 0;
        }
        if failed {
            self.tcp_fail(ci);
        }
        wrote
    }

    /// A TCP connection broke: whatever it had outstanding is lost.
    pub(super) fn tcp_fail(&mut self, ci: usize) {
        let now = self.now();
        let conn = &mut self.conns[ci];
        let lost = conn.inflight.clear();
        self.outstanding -= lost;
        self.stats.lost += lost as u64;
        if let Link::Tcp(link) = &mut conn.link {
            link.stream = None;
            link.wbuf.clear();
            link.wpos = 0;
            link.rlen = 0;
            link.retry_at = now;
        }
    }

    /// Reconnects broken TCP connections whose retry time has come.
    pub(super) fn reconnect(&mut self, now: u64) {
        for conn in &mut self.conns {
            if let Link::Tcp(link) = &mut conn.link {
                if link.stream.is_none() && now >= link.retry_at {
                    match tcp_connect(self.cfg.server, self.cfg.timeout) {
                        Ok(s) => link.stream = Some(s),
                        Err(_) => link.retry_at = now + 100_000_000,
                    }
                }
            }
        }
    }

    pub(super) fn recv_tcp(&mut self, ci: usize) -> usize {
        let mut got = 0;
        let mut failed = false;
        {
            let conn = &mut self.conns[ci];
            let Link::Tcp(link) = &mut conn.link else {
                unreachable!()
            };
            let Some(stream) = link.stream.as_mut() else {
                return 0;
            };
            loop {
                match stream.read(&mut link.rbuf[link.rlen..]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(m) => {
                        link.rlen += m;
                        let now = self.start.elapsed().as_nanos() as u64;
                        let mut start = 0;
                        while link.rlen - start >= 2 {
                            let len = u16::from_be_bytes([link.rbuf[start], link.rbuf[start + 1]])
                                as usize;
                            if link.rlen - start < 2 + len {
                                break;
                            }
                            let msg = &link.rbuf[start + 2..start + 2 + len];
                            if on_answer(&mut conn.inflight, &mut self.stats, &*self.wire, msg, now)
                            {
                                got += 1;
                                self.last_answer = now;
                            }
                            start += 2 + len;
                        }
                        link.rbuf.copy_within(start..link.rlen, 0);
                        link.rlen -= start;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        self.outstanding -= got;
        if failed {
            self.tcp_fail(ci);
        }
        got
    }
}
