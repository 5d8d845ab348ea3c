//! Shared test harness: a real gateway and connector over mutual TLS on
//! loopback, with a fresh state file, CAs and agent key.

// Each test crate uses a different part of this module.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use airlock_tunnel::certs::Ca;
use airlock_tunnel::connector::{Connector, ConnectorOptions, RouteTarget};
use airlock_tunnel::gateway::{Gateway, GatewayOptions};
use airlock_tunnel::state::State;

/// A missing test tool skips the test on a developer machine, but fails it
/// under scripts/test.sh (which installs the tools and sets
/// AIRLOCK_REQUIRE_SDKS=1), so CI can never pass by skipping.
pub fn skip_or_fail(what: &str) {
    if std::env::var_os("AIRLOCK_REQUIRE_SDKS").is_some() {
        panic!("required test tool missing: {what}; run scripts/setup.sh --deps-only");
    }
    eprintln!("SKIPPED: {what}");
}

pub fn python_sdk_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not start listening on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Gateway (plain HTTP agent listener on loopback) and one connector linked
/// to it over pinned mutual TLS, tunnel "corp", serving `routes`.
pub struct Tunnel {
    _dir: tempfile::TempDir,
    pub gateway: Gateway,
    _connector: Connector,
    /// An agent key for tunnel "corp", all routes.
    pub key: String,
}

impl Tunnel {
    pub async fn start(routes: BTreeMap<String, RouteTarget>) -> Tunnel {
        let dir = tempfile::tempdir().unwrap();
        let state_path = dir.path().join("state.db");
        let gw_ca = Ca::generate("gateway CA").unwrap();
        let tun_ca = Ca::generate("tunnel CA").unwrap();
        let gw_cert = gw_ca.issue_server(&["localhost"]).unwrap();
        let client = tun_ca.issue_client("connector-1").unwrap();
        let mut st = State::open(&state_path).unwrap();
        let token = st
            .create_tunnel("corp", &[tun_ca.pem().cert.into_bytes()])
            .unwrap();
        let (_, key) = st.create_key("conformance", "corp", &[]).unwrap();
        drop(st);
        let mut gopts = GatewayOptions::new(state_path, gw_cert.cert.into(), gw_cert.key.into());
        gopts.agent_tls = false;
        let gateway = Gateway::start(gopts).await.unwrap();
        let mut copts = ConnectorOptions::new(
            format!("localhost:{}", gateway.tunnel_addr.port()),
            "corp".into(),
            token,
            gw_ca.pem().cert.into(),
            client.cert.into(),
            client.key.into(),
        );
        copts.name = "conformance-connector".into();
        copts.routes = routes;
        copts.links = 1;
        let mut connector = Connector::start(copts).unwrap();
        tokio::time::timeout(Duration::from_secs(5), connector.wait_links(1))
            .await
            .expect("link up");
        let start = Instant::now();
        while gateway.links_up().get("corp").copied().unwrap_or(0) < 1 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "gateway saw no link"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Tunnel {
            _dir: dir,
            gateway,
            _connector: connector,
            key,
        }
    }

    /// The agent-side URL of a route.
    pub fn url(&self, route: &str) -> String {
        format!("http://{}/t/corp/{route}", self.gateway.agent_addr)
    }
}
