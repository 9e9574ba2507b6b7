//! The demo's child servers: `pushwise serve` processes on free ports with the demo's own
//! certificate, stopped with SIGTERM (so their recorders drain) when done or dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// The demo's self-signed certificate, written where the child servers can read it, and the DER
/// the demo's client trusts (that certificate and no other).
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

impl CertFiles {
    /// Generates a certificate for localhost and writes it (key readable by the owner only).
    pub fn create(dir: &Path) -> anyhow::Result<CertFiles> {
        let s = pushwise_server::tls::generate_self_signed()?;
        let (cert, key) = (dir.join("demo-cert.pem"), dir.join("demo-key.pem"));
        std::fs::write(&cert, &s.cert_pem).context("writing the demo certificate")?;
        write_private(&key, s.key_pem.as_bytes()).context("writing the demo key")?;
        Ok(CertFiles {
            cert,
            key,
            der: s.cert_der,
        })
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(data)
}

/// A `pushwise serve` child process, stopped with SIGTERM when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `pushwise serve` on a free port with the demo's certificate and `extra` flags.
    pub fn start(
        db: &Path,
        site: &Path,
        cert: &CertFiles,
        extra: &[&str],
    ) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("finding the pushwise binary")?;
        let mut child = Command::new(exe)
            .arg("--db")
            .arg(db)
            .arg("serve")
            .arg("--root")
            .arg(site)
            .arg("--tls-cert")
            .arg(&cert.cert)
            .arg("--tls-key")
            .arg(&cert.key)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--analyze-every",
                "0",
                "--reload-every-ms",
                "200",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the demo server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on https://")
            .with_context(|| format!("the demo server did not start: {line:?}"))?
            .parse()?;
        Ok(ServerProcess { child, addr })
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}
