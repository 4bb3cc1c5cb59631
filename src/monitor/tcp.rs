//! The `tcp` check: a connection is accepted within the timeout.

use super::*;

pub(super) async fn check_tcp(address: SocketAddr, timeout: Duration) -> Verdict {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Err(_) => Err(CheckFailure::Timeout(timeout)),
        Ok(Err(error)) => Err(CheckFailure::Io {
            what: "connect",
            error,
        }),
        Ok(Ok(_stream)) => Ok("connected".into()),
    }
}
