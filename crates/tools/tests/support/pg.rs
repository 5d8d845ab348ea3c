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
    pub fn start() -> PgCluster {
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
        let pg = PgCluster {
            dir,
            bin,
            as_nobody,
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
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {PORT} -c fsync=off -c full_page_writes=off",
            pg.socket_dir().display()
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

    /// A libpq-style DSN for the `postgres` superuser.
    pub fn dsn(&self) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname=postgres",
            self.socket_dir().display()
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
                &PORT.to_string(),
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
