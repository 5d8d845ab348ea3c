//! A throwaway PostgreSQL cluster from the machine's own binaries
//! (`initdb`, `pg_ctl`), in a temporary directory, listening only on a Unix
//! socket there. initdb refuses to run as root, so as root the cluster runs
//! as `nobody` (via `setpriv`). Dropping the cluster stops it and removes
//! the directory.
//!
//! ```ignore
//! let pg = PgCluster::start();
//! pg.psql("CREATE TABLE t (id int)");
//! let dsn = pg.dsn(); // "host=/tmp/... port=5432 user=postgres dbname=postgres"
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_nobody: bool,
    /// Port of the socket, and of 127.0.0.1 when started with TLS.
    port: u16,
    tcp: bool,
}

const PORT: u16 = 5432;

/// Where `initdb` and friends live: `pg_config --bindir`, then the
/// newest `/usr/lib/postgresql/*/bin`.
pub fn bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().expect(
        "PostgreSQL server binaries not found (initdb); install the `postgresql` package (scripts/setup.sh does)",
    )
}

/// Whether this process runs as root: a directory it creates is owned by uid 0.
fn is_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.metadata().map(|m| m.uid() == 0).unwrap_or(false)
}

impl PgCluster {
    /// A cluster on a Unix socket only.
    pub fn start() -> PgCluster {
        Self::start_inner(None)
    }

    /// A cluster that also listens on 127.0.0.1 with TLS (`ssl=on`) using
    /// this PEM certificate chain and key; see [`PgCluster::tcp_dsn`].
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PgCluster {
        Self::start_inner(Some((cert_pem, key_pem)))
    }

    fn start_inner(tls: Option<(&str, &str)>) -> PgCluster {
        let bin = bindir();
        let dir = tempfile::Builder::new()
            .prefix("airlock-pg-")
            .tempdir()
            .unwrap();
        let as_nobody = is_root(dir.path());
        if as_nobody {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            let st = Command::new("chown")
                .args(["nobody:nogroup", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(st.success(), "chown of the cluster dir failed");
        }
        let mut pg = PgCluster {
            dir,
            bin,
            as_nobody,
            port: PORT,
            tcp: false,
        };
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut listen = "''".to_string();
        if let Some((cert, key)) = tls {
            // The data dir's owner must own the key, readable by it alone.
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, pem).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
                if pg.as_nobody {
                    let st = Command::new("chown")
                        .args(["nobody:nogroup", path.to_str().unwrap()])
                        .status()
                        .unwrap();
                    assert!(st.success());
                }
            }
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            pg.port = free.local_addr().unwrap().port();
            pg.tcp = true;
            listen = "127.0.0.1 -c ssl=on".to_string();
        }
        let opts = format!(
            "-c listen_addresses={listen} -c unix_socket_directories='{}' -p {} -c fsync=off -c full_page_writes=off",
            pg.socket_dir().display(),
            pg.port
        );
        let log = pg.dir.path().join("log");
        let out = pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A libpq-style DSN for the `postgres` superuser over the Unix socket.
    pub fn dsn(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A DSN over loopback TCP (clusters from [`PgCluster::start_tls`]),
    /// with `extra` options such as `sslmode=require`.
    pub fn tcp_dsn(&self, extra: &str) -> String {
        assert!(self.tcp, "cluster started without TCP");
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres {extra}",
            self.port
        )
    }

    fn run(&self, prog: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(prog);
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .output()
            .unwrap()
    }

    /// Runs SQL with psql as the superuser; panics on error.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.socket_dir().to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        );
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
