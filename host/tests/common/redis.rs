//! A real `redis-server` per test, on a free loopback port, with a password, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "test-pass-9";

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    tls: bool,
    /// A second address it listens on (a real node's gateway, for the pods).
    also: Option<String>,
}

/// `cmd` on the machine's clock even when the suite runs under libfaketime (scripts/test's
/// year-ahead run).
fn on_machine_clock(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_PRELOAD").env_remove("FAKETIME")
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_also_on(None)
    }

    /// A server the pods of a real node reach too: it also listens on the node's gateway address
    /// ([`RedisServer::url_at`] that address is the URL for the sandbox Jobs' Secret).
    pub fn start_for_node(gateway: &str) -> RedisServer {
        Self::start_also_on(Some(gateway.to_string()))
    }

    fn start_also_on(also: Option<String>) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = RedisServer {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
            tls: false,
            also,
        };
        r.restart();
        r
    }

    /// The URL at another address it listens on.
    pub fn url_at(&self, address: &str) -> String {
        format!("redis://:{PASSWORD}@{address}:{}", self.port)
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1 from a private CA
    /// (made with openssl); [`RedisServer::ca_file`] is that CA.
    pub fn start_tls() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        // The certificates are made on the machine's clock, valid from now for 800 days: under
        // scripts/test's year-ahead run the hosts' clock is 400 days on while the sandbox
        // subprocesses (started with a cleared environment) keep the machine's, and both must
        // accept them.
        let sh = |script: &str| {
            let ok = on_machine_clock(Command::new("sh").arg("-c").arg(script))
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "openssl failed: {script}");
        };
        sh("openssl req -x509 -newkey rsa:2048 -nodes -days 800 -subj /CN=test-ca -keyout ca.key -out ca.crt");
        sh("openssl req -newkey rsa:2048 -nodes -subj /CN=redis -keyout redis.key -out redis.csr");
        sh(
            "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 800 -extfile san.ext -out redis.crt",
        );
        let mut r = RedisServer {
            port,
            child: None,
            dir,
            tls: true,
            also: None,
        };
        r.restart();
        r
    }

    /// The CA that signed a TLS server's certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Start (again) on the same port. Nothing is persisted across restarts.
    pub fn restart(&mut self) {
        assert!(
            std::path::Path::new("/usr/bin/redis-server").exists(),
            "redis-server is missing: apt-get install redis-server (.ci/run does)"
        );
        let port = self.port.to_string();
        let d = self.dir.path().display().to_string();
        let (plain, tls): (&str, Vec<String>) = if self.tls {
            (
                "0",
                vec![
                    "--tls-port".into(),
                    port.clone(),
                    "--tls-cert-file".into(),
                    format!("{d}/redis.crt"),
                    "--tls-key-file".into(),
                    format!("{d}/redis.key"),
                    "--tls-ca-cert-file".into(),
                    format!("{d}/ca.crt"),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ],
            )
        } else {
            (&port, vec![])
        };
        let mut bind = vec!["--bind", "127.0.0.1"];
        bind.extend(self.also.as_deref());
        let mut cmd = Command::new("redis-server");
        cmd.args(&tls)
            .args(bind)
            .args([
                "--port",
                plain,
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                PASSWORD,
            ])
            .arg("--dir")
            .arg(self.dir.path());
        // redis-server keeps the machine's clock when the suite runs under a faked one
        // (scripts/test's year-ahead run): libfaketime recurses inside its allocator and it never
        // starts. A Redis whose clock differs from the hosts' is what production has.
        let child = on_machine_clock(&mut cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://:{PASSWORD}@127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The length of stream `key` in the Redis at `url` (results published, acknowledged or not).
pub async fn xlen(url: &str, key: &str) -> u64 {
    let mut conn = ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    ::redis::cmd("XLEN").arg(key).query_async(&mut conn).await.unwrap()
}
