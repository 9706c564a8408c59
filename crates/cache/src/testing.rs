//! Test helpers (feature `testing`): a redis-server of a test's own, so stopping it
//! affects only that test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` on a free local port, without persistence, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// No port, no binary, or it did not come up.
    #[error("redis-server: {0}")]
    Start(String),
}

impl RedisServer {
    /// Starts one on a free port (or on `port`, to restart one that was stopped).
    pub fn start(port: Option<u16>) -> Result<RedisServer, RedisServerError> {
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| RedisServerError::Start(format!("no free port: {e}")))?,
        };
        let dir = std::env::temp_dir().join(format!("napiatke-redis-{port}"));
        let _ = std::fs::create_dir_all(&dir);
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                RedisServerError::Start(format!(
                    "could not run it ({e}); is redis-server installed?"
                ))
            })?;
        let server = RedisServer {
            port,
            child: Some(child),
            dir,
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(RedisServerError::Start(format!(
            "nothing listens on {port}"
        )))
    }

    /// Its port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (data is gone: it has no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
