//! The `tcp` check: a connection is accepted within the timeout.
//!
//! The connection is closed with a reset (`SO_LINGER` 0), as HAProxy's
//! checks do, not with FIN: a graceful close leaves a TIME_WAIT socket on
//! one side for a minute per check. At 12,000 checks a second that is
//! hundreds of thousands of sockets; against few target addresses they use
//! up the ephemeral ports ("Cannot assign requested address"), and before
//! that every `connect` spends its time searching for a free port (70 % of
//! ggond's CPU in `__inet_hash_connect` at 10,000 services on three nodes,
//! measured with perf). A target's log may say "connection reset by peer".

use super::*;

pub(super) async fn check_tcp(address: SocketAddr, timeout: Duration) -> Verdict {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Err(_) => Err(CheckFailure::Timeout(timeout)),
        Ok(Err(error)) => Err(CheckFailure::Io {
            what: "connect",
            error,
        }),
        Ok(Ok(stream)) => {
            // Failing to set it only means a graceful close.
            let _ = stream.set_zero_linger();
            Ok("connected".into())
        }
    }
}
