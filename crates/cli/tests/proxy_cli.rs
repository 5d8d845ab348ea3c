//! `airlock proxy` as a real process: a generated credential, an allowed
//! request through it, a refused one, and a 407 without the credential.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ask(proxy: &str, req: &str) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn proxy_process_allows_refuses_and_authenticates() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in upstream.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--allow",
            &up.to_string(),
            "--allow-private",
            "127.0.0.1/32",
        ])
        .env_remove("AIRLOCK_PROXY_AUTH")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listen = lines.next().unwrap().unwrap();
    let cred = lines.next().unwrap().unwrap();
    let addr = listen.rsplit(' ').next().unwrap().to_string();
    let cred = cred.strip_prefix("proxy credential: ").unwrap().to_string();
    let auth = format!("Proxy-Authorization: Basic {}\r\n", b64(&cred));

    let ok = ask(
        &addr,
        &format!("GET http://{up}/ HTTP/1.1\r\nHost: {up}\r\n{auth}\r\n"),
    );
    let denied = ask(
        &addr,
        &format!(
            "GET http://127.0.0.2:{}/ HTTP/1.1\r\nHost: 127.0.0.2:{}\r\n{auth}\r\n",
            up.port(),
            up.port()
        ),
    );
    let noauth = ask(
        &addr,
        &format!("GET http://{up}/ HTTP/1.1\r\nHost: {up}\r\n\r\n"),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("hello"),
        "{ok}"
    );
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(noauth.starts_with("HTTP/1.1 407"), "{noauth}");
}
