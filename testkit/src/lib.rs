//! # scale0-testkit
//!
//! The harness scale0's tests and benches share, in one dev-only crate, so no test
//! file carries a copy of it:
//!
//! - [`process`]: every process a test starts, and every process *those* start (a
//!   `scale0 local`'s workers, its `scale0-instance` processes), is found again and
//!   killed when the test ends — passing or failing — or, if the test process itself
//!   died, by the next test that starts;
//! - [`tls`]: a CA of the test's own and a server certificate for `localhost`, made
//!   with `openssl`, and a second, unrelated CA to be refused;
//! - [`rabbitmq`]: a private RabbitMQ node (own name, ports, config and data
//!   directory) with a TLS listener, leaving the shared broker on 5672 untouched;
//! - [`redis`]: a private `redis-server` on a free port: plain, persistent (an
//!   append-only file that survives SIGKILL) or TLS.
//!
//! Tests that need a service fail with a message naming it, never hang.

pub mod process;
pub mod rabbitmq;
pub mod redis;
pub mod tls;

use std::net::TcpListener;
use std::path::PathBuf;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A directory of the test's own under the system temp dir, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scale0-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}
