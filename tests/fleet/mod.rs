//! The harness of the fleet tests (issue 13): a PostgreSQL server of the test's own in a
//! temporary directory (initdb and pg_ctl from the Debian `postgresql` package, run as the
//! unprivileged user `postgres` when the tests run as root; loopback only), replicas of
//! the gateway as child processes, and HAProxy in front of them. Each stops what it
//! started when dropped. A missing package is a failure that names the install script.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// A fresh temporary directory for one test.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("litellm-fleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `/usr/lib/postgresql/<highest>/bin`.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run scripts/install-test-deps.sh (apt-get install postgresql)")
    })
}

/// Runs a PostgreSQL tool as the unprivileged user (`postgres` when we are root).
fn pg_command(tool: &str) -> Command {
    let program = postgres_bin().join(tool);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL server in a temporary directory on 127.0.0.1; stopped and removed on drop.
pub struct Postgres {
    dir: PathBuf,
    /// Its port.
    pub port: u16,
}

impl Postgres {
    /// initdb, then start (fsync off: the data is thrown away).
    pub fn start(name: &str) -> Postgres {
        let dir = fresh_dir(&format!("pg-{name}"));
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the PostgreSQL directory failed");
        }
        let output = pg_command("initdb")
            .args(["-D"])
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pg = Postgres {
            dir,
            port: free_port(),
        };
        pg.resume();
        pg
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) on the same port and data.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let output = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_ctl start failed: {} {}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server (fast: connections are cut).
    pub fn halt(&self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The seal key every replica of a test shares (32 bytes, base64).
pub fn seal_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

/// One replica of the gateway: the binary on its own settings file; killed on drop.
pub struct Replica {
    child: Child,
    /// Its name (`replica` in the settings).
    pub name: String,
    /// Its port.
    pub port: u16,
}

impl Replica {
    /// Starts `litellm-mcp serve` with `settings` (a YAML text without `listen` and
    /// `store`) on the store at `database_url`, named `name`.
    pub fn start(dir: &Path, name: &str, database_url: &str, settings: &str) -> Replica {
        let config = dir.join(format!("{name}.yaml"));
        let text = format!(
            "listen: 127.0.0.1:0\n\
             store: {{database_url: '{database_url}', seal_keys: ['{}'], replica: {name}}}\n{settings}",
            seal_key()
        );
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_litellm-mcp"))
            .args(["serve", "-c"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join(format!("{name}.log"))).unwrap(),
            ))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let port = crate::common::listening_port(stdout, Duration::from_secs(60));
        Replica {
            child,
            name: name.to_string(),
            port,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HAProxy, round-robin, no stickiness, in front of `backends` (ports); killed on drop.
pub struct Haproxy {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Haproxy {
    /// Starts HAProxy on a free port. Connections are not reused across servers
    /// (`http-reuse never`), so each request is balanced on its own.
    pub fn start(dir: &Path, backends: &[u16]) -> Haproxy {
        let port = free_port();
        let mut config = format!(
            "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  option http-server-close\n  http-reuse never\n\
             frontend in\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n  option redispatch\n  retries 2\n  option httpchk GET /health\n"
        );
        for (i, backend) in backends.iter().enumerate() {
            config.push_str(&format!(
                "  server r{i} 127.0.0.1:{backend} check inter 500ms fall 1 rise 1\n"
            ));
        }
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let haproxy = which("haproxy").unwrap_or_else(|| {
            panic!("haproxy is not installed: run scripts/install-test-deps.sh (apt-get install haproxy)")
        });
        let child = Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("haproxy.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "haproxy did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Haproxy { child, port }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns how long it took.
pub async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
