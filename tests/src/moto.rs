//! A private moto server per test (or per test binary), on a free port.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::http_client::{self, HttpClient};
use crate::process::ChildGuard;
use crate::{keep_logs, workspace_root, HarnessError};

const START_ATTEMPTS: u32 = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// True when `GILD_SKIP_MOTO=1`: the only situation in which tests that need
/// moto may skip themselves. Anything else (moto missing, moto broken) must
/// fail loudly so CI cannot silently go green without running them.
pub fn skip_requested() -> bool {
    std::env::var("GILD_SKIP_MOTO").is_ok_and(|v| v == "1")
}

/// Where `MotoServer::start` looks for the executable: `GILD_MOTO_SERVER`,
/// else the pinned moto `make tools` installs into `<workspace>/.venv`, behind
/// `tools/moto_serial.py` (requests applied one at a time, as atomic as
/// DynamoDB's conditional writes).
pub fn moto_server_path() -> PathBuf {
    match std::env::var_os("GILD_MOTO_SERVER") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_root()
            .join(".venv")
            .join("bin")
            .join("gild-moto-server"),
    }
}

/// A running `moto_server`, killed (and reaped) on drop.
///
/// Keep it owned by a test (or a guard that is dropped): Rust never drops
/// `static`s, so a server stored in one would outlive the test binary.
/// Tests sharing a server should call `reset` instead of restarting.
pub struct MotoServer {
    child: ChildGuard,
    port: u16,
    log_path: PathBuf,
    client: HttpClient,
}

enum Startup {
    Ready,
    Exited(String),
    TimedOut,
}

impl MotoServer {
    pub async fn start() -> Result<MotoServer, HarnessError> {
        let exe = moto_server_path();
        if !exe.is_file() {
            return Err(HarnessError::MotoNotFound { path: exe });
        }
        let client = http_client::new_client();
        let mut last_failure = None;
        for attempt in 1..=START_ATTEMPTS {
            // Another process can grab the port between our probe and moto's
            // bind; moto then exits at once and we try again on a new port.
            let port = free_port()?;
            let log_path =
                std::env::temp_dir().join(format!("gild-moto-{}-{port}.log", std::process::id()));
            let child = spawn_moto(&exe, port, &log_path)?;
            match wait_ready(&client, &child, port).await {
                Startup::Ready => {
                    return Ok(MotoServer {
                        child,
                        port,
                        log_path,
                        client,
                    })
                }
                Startup::Exited(status) => {
                    eprintln!(
                        "moto_server attempt {attempt} on port {port} exited ({status}); log: {}",
                        log_path.display()
                    );
                    last_failure = Some((format!("moto_server exited ({status})"), log_path));
                }
                Startup::TimedOut => {
                    drop(child);
                    eprintln!(
                        "moto_server on port {port} did not answer within {START_TIMEOUT:?}; log: {}",
                        log_path.display()
                    );
                    return Err(HarnessError::MotoStartFailed {
                        attempts: attempt,
                        reason: format!("no answer on /moto-api/ within {START_TIMEOUT:?}"),
                        log: log_path,
                    });
                }
            }
        }
        let (reason, log) = last_failure.unwrap_or_else(|| {
            (
                "no start attempt was made".to_string(),
                std::env::temp_dir(),
            )
        });
        Err(HarnessError::MotoStartFailed {
            attempts: START_ATTEMPTS,
            reason,
            log,
        })
    }

    /// Base URL for SDK clients and `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// moto's combined stdout/stderr (request log and tracebacks).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Clears all emulated state, so one server can be shared by tests that
    /// each need a clean account.
    pub async fn reset(&self) -> Result<(), HarnessError> {
        let url = format!("{}/moto-api/reset", self.endpoint());
        let request = http_client::build_request(Method::POST, &url, Bytes::new())?;
        let response = http_client::send(&self.client, request, REQUEST_TIMEOUT).await?;
        if response.status.is_success() {
            Ok(())
        } else {
            Err(HarnessError::HttpStatus {
                url,
                status: response.status.as_u16(),
                body: String::from_utf8_lossy(&response.body).into_owned(),
            })
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.child.terminate();
        if keep_logs() {
            eprintln!("moto_server log kept at {}", self.log_path.display());
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("cannot bind 127.0.0.1:0 to pick a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| HarnessError::io("cannot read the probed port", e))?
        .port();
    Ok(port)
}

fn spawn_moto(exe: &Path, port: u16, log_path: &Path) -> Result<ChildGuard, HarnessError> {
    let log = File::create(log_path)
        .map_err(|e| HarnessError::io(format!("cannot create {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| HarnessError::io(format!("cannot reopen {}", log_path.display()), e))?;
    let mut command = Command::new(exe);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // The base images Packer's source_ami_filter finds (look-alikes under
        // Debian's and Amazon's owner ids), as the buildspec twin's moto has
        // them: tests/twin/codebuild/README.md.
        .env(
            "MOTO_AMIS_PATH",
            crate::workspace_root().join("tests/twin/codebuild/base-amis.json"),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    ChildGuard::spawn(&mut command, &format!("moto_server ({})", exe.display()))
}

async fn wait_ready(client: &HttpClient, child: &ChildGuard, port: u16) -> Startup {
    let url = format!("http://127.0.0.1:{port}/moto-api/");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_exit() {
            return Startup::Exited(status.to_string());
        }
        let answered = match http_client::build_request(Method::GET, &url, Bytes::new()) {
            Ok(request) => http_client::send(client, request, Duration::from_secs(2))
                .await
                .is_ok_and(|r| r.status.is_success()),
            Err(_) => false,
        };
        if answered {
            // Something answered, but if our moto lost the port race the
            // answer came from another server; ours has exited by now.
            return match child.try_exit() {
                Some(status) => Startup::Exited(status.to_string()),
                None => Startup::Ready,
            };
        }
        if Instant::now() >= deadline {
            return Startup::TimedOut;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
