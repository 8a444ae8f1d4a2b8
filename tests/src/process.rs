//! Ownership of harness child processes (moto, function binaries).
//!
//! `std::process::Child` rather than tokio's, because `Drop` must be able to
//! kill *and reap* the process synchronously: a test that panics still runs
//! destructors, and leaving a zombie or a live moto behind would make the next
//! test run flaky.

use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};

use crate::HarnessError;

pub(crate) struct ChildGuard {
    child: Mutex<Child>,
    pid: u32,
}

impl ChildGuard {
    pub(crate) fn spawn(command: &mut Command, what: &str) -> Result<Self, HarnessError> {
        die_with_parent(command);
        let child = command
            .spawn()
            .map_err(|e| HarnessError::io(format!("cannot start {what}"), e))?;
        let pid = child.id();
        Ok(ChildGuard {
            child: Mutex::new(child),
            pid,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's stdout, when it was piped and not taken yet.
    pub(crate) fn take_stdout(&self) -> Option<std::process::ChildStdout> {
        self.lock().stdout.take()
    }

    fn lock(&self) -> MutexGuard<'_, Child> {
        // A panic while holding this lock cannot leave the Child inconsistent,
        // so a poisoned lock is still safe to use.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(status)` once the process has exited (reaping it), else `None`.
    /// Polling under the lock guarantees `terminate` never signals a pid that
    /// was already reaped and possibly reused.
    pub(crate) fn try_exit(&self) -> Option<ExitStatus> {
        self.lock().try_wait().ok().flatten()
    }

    pub(crate) fn terminate(&self) {
        let mut child = self.lock();
        if matches!(child.try_wait(), Ok(None)) {
            // SIGKILL: neither moto nor a Lambda function needs a graceful
            // shutdown, and Lambda itself freezes/kills environments this way.
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Destructors do not run when the harness process is killed or aborts (a
/// panic inside a destructor, SIGKILL from a CI timeout), so the kernel is
/// asked to kill the child when its parent dies: no moto or function process
/// can outlive a test run or `make demo`. The signal follows the *thread*
/// that spawned the child, so children are spawned from async code (runtime
/// threads live as long as the runtime), never from `spawn_blocking`.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // prctl(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.terminate();
    }
}
