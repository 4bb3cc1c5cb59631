//! The `exec` check: a local command, run without a shell in its own
//! process group; exit 0 is healthy, and its first output line is the detail.

use super::*;

pub(super) async fn check_exec(argv: &[String], timeout: Duration) -> Verdict {
    let Some((program, args)) = argv.split_first() else {
        return Err(CheckFailure::EmptyCommand);
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|error| CheckFailure::Spawn {
        program: program.clone(),
        error,
    })?;
    // Declared after `child`, so dropped before it: the group is killed while
    // its leader is not yet reaped, so the group id cannot have been reused.
    let mut group = KillGroupOnDrop::new(child.id());
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Vec::new();

    let waited = tokio::time::timeout(timeout, async {
        let drain = async {
            tokio::join!(
                read_capped(stdout.as_mut(), &mut out),
                read_capped(stderr.as_mut(), &mut err)
            )
        };
        tokio::pin!(drain);
        let mut drained = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = &mut drain, if !drained => drained = true,
            }
        };
        if !drained {
            let _ = tokio::time::timeout(PIPE_GRACE, &mut drain).await;
        }
        status
    })
    .await;

    let status = match waited {
        // `group` (then `child`) is dropped on return: the process group is killed.
        Err(_) => return Err(CheckFailure::Timeout(timeout)),
        Ok(Err(error)) => {
            return Err(CheckFailure::Wait {
                program: program.clone(),
                error,
            })
        }
        Ok(Ok(status)) => status,
    };
    // Reaped: from here on the group id may be reused, so never signal it.
    group.disarm();
    let (first, second) = if status.success() {
        (&out, &err)
    } else {
        (&err, &out)
    };
    let line = first_line(first).or_else(|| first_line(second));
    if status.success() {
        let mut detail = exit_detail(status);
        if let Some(line) = line {
            detail.push_str(": ");
            detail.push_str(&line);
        }
        Ok(detail)
    } else {
        Err(CheckFailure::Command { status, line })
    }
}

/// Read `from` to the end, keeping the first [`CAPTURE_LIMIT`] bytes in `into`
/// and discarding the rest (so the child never blocks on a full pipe).
async fn read_capped<R: AsyncRead + Unpin>(from: Option<&mut R>, into: &mut Vec<u8>) {
    let Some(from) = from else { return };
    let mut chunk = [0u8; 1024];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = CAPTURE_LIMIT.saturating_sub(into.len());
                into.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

fn first_line(captured: &[u8]) -> Option<String> {
    String::from_utf8_lossy(captured)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

pub(super) fn exit_detail(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

/// Kills the exec check's process group (the child and anything it started)
/// when dropped, unless disarmed once the child has been reaped.
struct KillGroupOnDrop {
    #[cfg_attr(not(unix), allow(dead_code))]
    pgid: Option<i32>,
}

impl KillGroupOnDrop {
    fn new(pid: Option<u32>) -> Self {
        // pid 0 or 1 would make kill(-pgid) hit our own group or everything.
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).filter(|&p| p > 1);
        KillGroupOnDrop { pgid }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) has no memory-safety preconditions. `pgid` is the
            // process group our unreaped child leads (`process_group(0)`), so
            // it names only processes this check started.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}
