//! A throwaway PostgreSQL server for tests and benchmarks: `initdb` into a temporary directory,
//! `pg_ctl start` on a free local port, stopped and deleted on drop.
//!
//! Why real servers and one per test that needs it: the fleet store is only as good as its SQL on
//! the PostgreSQL that operators run, and a test that stops the server (the outage test) must not
//! take other tests' databases down with it. `initdb --no-sync` plus start takes about two
//! seconds here. The binaries come from the Debian package `postgresql`
//! (`/usr/lib/postgresql/<version>/bin`); the server refuses to run as root, so as root every
//! command runs as the `postgres` user through `runuser`, and the directory is theirs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::Error;

/// A running PostgreSQL server owned by this process.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    /// `-c name=value` settings the server starts (and restarts) with.
    settings: Vec<String>,
}

impl PgCluster {
    /// Creates and starts a server tuned for tests (no fsync: a crashed test's data is not worth
    /// keeping).
    pub fn start() -> Result<PgCluster, Error> {
        Self::start_with(&["-c", "fsync=off", "-c", "full_page_writes=off"], None)
    }

    /// Creates and starts a server with PostgreSQL's durable defaults (for benchmarks).
    pub fn start_durable() -> Result<PgCluster, Error> {
        Self::start_with(&[], None)
    }

    /// Creates and starts a test server that accepts TCP connections only over TLS, with this
    /// certificate and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Result<PgCluster, Error> {
        Self::start_with(
            &["-c", "fsync=off", "-c", "ssl=on"],
            Some((cert_pem, key_pem)),
        )
    }

    fn start_with(settings: &[&str], tls: Option<(&str, &str)>) -> Result<PgCluster, Error> {
        let bin = find_bin()?;
        let as_postgres = rustix::process::geteuid().is_root();
        let dir = std::env::temp_dir().join(format!(
            "pushwise-pg-{}-{}",
            std::process::id(),
            crate::time::now_ms() ^ i64::from(rand_u16())
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::system(format!("cannot create {}: {e}", dir.display())))?;
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            as_postgres,
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        if as_postgres {
            cluster.run("chown", &["postgres:postgres", &cluster.dir_str()], false)?;
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_str(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            true,
        )?;
        if let Some((cert, key)) = tls {
            cluster.write_tls(cert, key)?;
        }
        // A free port may be taken between choosing and binding it: try a few.
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::system("PostgreSQL did not start")))
    }

    /// The certificate and key in the data directory (the server's defaults `server.crt` and
    /// `server.key`, the key readable by its owner only, as PostgreSQL insists), and a
    /// `pg_hba.conf` that refuses TCP connections without TLS.
    fn write_tls(&self, cert: &str, key: &str) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.dir.join("data");
        let write = |name: &str, text: &str, mode: u32| -> Result<(), Error> {
            let p = data.join(name);
            std::fs::write(&p, text)
                .and_then(|()| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)))
                .map_err(|e| Error::system(format!("cannot write {}: {e}", p.display())))
        };
        write("server.crt", cert, 0o644)?;
        write("server.key", key, 0o600)?;
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
            0o600,
        )?;
        if self.as_postgres {
            for f in ["server.crt", "server.key", "pg_hba.conf"] {
                let p = data.join(f);
                self.run("chown", &["postgres:postgres", &p.to_string_lossy()], false)?;
            }
        }
        Ok(())
    }

    fn start_server(&self) -> Result<(), Error> {
        let mut opts = format!(
            "-p {} -h 127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir_str()
        );
        for s in &self.settings {
            opts.push(' ');
            opts.push_str(s);
        }
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_str(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            true,
        )
    }

    /// The superuser URL of database `postgres`.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, Error> {
        self.psql(&format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }

    /// Runs one SQL command as the superuser through `psql`.
    pub fn psql(&self, sql: &str) -> Result<(), Error> {
        let psql = self.bin.join("psql");
        let out = Command::new(psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.admin_url(),
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| Error::system(format!("cannot run psql: {e}")))?;
        if !out.status.success() {
            return Err(Error::system(format!(
                "psql {sql:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Stops the server at once (`immediate`: like a crash, connections cut).
    pub fn stop(&self) -> Result<(), Error> {
        self.run(
            "pg_ctl",
            &["-D", &self.data_str(), "-m", "immediate", "-w", "stop"],
            true,
        )
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&self) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            match self.start_server() {
                Ok(()) => return Ok(()),
                // The port may linger briefly after an immediate stop.
                Err(e) if started.elapsed() > Duration::from_secs(30) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn data_str(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn dir_str(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Runs a PostgreSQL binary (or, for `chown`, a system one), as `postgres` when root.
    fn run(&self, prog: &str, args: &[&str], pg_bin: bool) -> Result<(), Error> {
        let exe = if pg_bin {
            self.bin.join(prog)
        } else {
            PathBuf::from(prog)
        };
        let mut cmd = if pg_bin && self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| Error::system(format!("cannot run {}: {e}", exe.display())))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            return Err(Error::system(format!(
                "{prog} failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim(),
                log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            )));
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, or `PUSHWISE_PG_BIN`.
fn find_bin() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("PUSHWISE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).ok_or_else(|| {
        Error::system(
            "no PostgreSQL server binaries under /usr/lib/postgresql (install the Debian package \
             `postgresql`, or set PUSHWISE_PG_BIN to the directory holding initdb and pg_ctl)",
        )
    })
}

fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::system(format!("no free local port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::system(format!("no free local port: {e}")))
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_le_bytes(b)
}
