//! The egress path end to end over HTTPS: a command in `airlock run` fetches
//! an allowed HTTPS URL on a loopback server; the proxy intercepts (its CA
//! is trusted inside through the CA-bundle variables), injects the
//! credential and re-encrypts to the real server, verified. The server sees
//! the credential; the jail's environment, files and traffic never hold it.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

const SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

#[test]
fn https_credential_injection_through_airlock_run() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    // A private CA and a leaf for `localhost`, as an internal service has.
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-internal-ca",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("server.pem"),
    ]);
    std::fs::write(p("server.py"), SERVER).unwrap();
    let mut server = Command::new("/usr/bin/python3")
        .args([p("server.py"), p("server.pem"), p("server.key")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port = port.trim().to_string();

    let wd = tempfile::tempdir().unwrap();
    std::fs::set_permissions(wd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(wd.path(), Some(65534), Some(65534)).unwrap();
    }
    std::fs::write(
        p("airlock.yaml"),
        format!(
            "version: 1\nsandbox:\n  network:\n    allow: [\"localhost:{port}\"]\n    allow_private: [\"127.0.0.1/32\", \"::1/128\"]\n\
credentials:\n  - name: internal-api\n    host: \"localhost:{port}\"\n    header: Authorization\n    value: \"Bearer ${{env:AIRLOCK_TEST_SECRET}}\"\n"
        ),
    )
    .unwrap();
    let script = format!(
        "curl -sS https://localhost:{port}/data; echo; \
         env | grep -c sentinel-https-secret; \
         grep -rl sentinel-https-secret . 2>/dev/null | wc -l; \
         curl -sS -H 'Authorization: Bearer forged' https://localhost:{port}/forged | grep -i '^authorization'"
    );
    let o = Command::new(AIRLOCK)
        .args([
            "run",
            "--config",
            &p("airlock.yaml"),
            "--ca-dir",
            &p("ca"),
            "--upstream-ca",
            &p("ca.pem"),
        ])
        .arg("--workdir")
        .arg(wd.path())
        .args(["--", "/bin/sh", "-c", &script])
        .env("AIRLOCK_TEST_SECRET", "sentinel-https-secret")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    // The real server saw the injected credential (its echo of it comes
    // back masked, same length, by the proxy)…
    let lines: Vec<&str> = out.lines().collect();
    let echoed = format!(
        "Authorization: {}",
        "*".repeat("Bearer sentinel-https-secret".len())
    );
    assert!(out.contains(&echoed), "{out}\n{err}");
    assert!(!out.contains("sentinel-https-secret"), "{out}\n{err}");
    // …the jail's environment and files never held it…
    assert!(
        lines.iter().filter(|l| l.trim() == "0").count() >= 2,
        "{out}"
    );
    // …and a header the jail forges for a protected credential is replaced.
    assert_eq!(out.matches(&echoed).count(), 2, "{out}");
    assert!(!out.contains("forged"), "{out}");
}
