//! The `tcp` check: a connection is accepted within the timeout.

use super::*;

pub(super) async fn check_tcp(address: SocketAddr, timeout: Duration) -> Verdict {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Err(_) => Err(timeout_detail(timeout)),
        Ok(Err(e)) => Err(io_detail("connect", &e)),
        Ok(Ok(_stream)) => Ok("connected".into()),
    }
}
