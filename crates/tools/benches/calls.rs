//! Latency of one call of each declared kind against real peers (a git
//! repository, a local HTTP server, a PostgreSQL cluster started from the
//! machine's binaries), measured in-process without MCP around it.
//! Run with `cargo bench -p airlock-tools --bench calls`; prints figures,
//! asserts nothing.

#[allow(dead_code)] // the bench uses part of the test harness
#[path = "../tests/support/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock_config::{
    Approval, ByteSize, GitRepos, HttpRequest, HttpRoute, PostgresQuery, Secret, SqlParam, SqlType,
    Tool, ToolKind,
};
use airlock_tools::{build_tool, CallContext, Limits};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const CALLS: usize = 2000;

async fn measure(label: &str, tool: &Tool, args: Value) {
    let imp = build_tool("bench", tool).unwrap().unwrap();
    let limits = Limits::effective(tool, None);
    let ctx = CallContext {
        agent: "bench".into(),
        session: None,
        cancel: CancellationToken::new(),
    };
    // Warm-up (pools, caches).
    for _ in 0..20 {
        let c = imp.canonicalize(&args, &limits).unwrap();
        imp.call(&ctx, c, &limits).await.unwrap();
    }
    let mut lat = Vec::with_capacity(CALLS);
    let started = Instant::now();
    for _ in 0..CALLS {
        let t = Instant::now();
        let c = imp.canonicalize(&args, &limits).unwrap();
        imp.call(&ctx, c, &limits).await.unwrap();
        lat.push(t.elapsed());
    }
    let total = started.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{label:<28} {:>8.0} calls/s   p50 {:>8.1?}   p99 {:>8.1?}",
        CALLS as f64 / total.as_secs_f64(),
        p(0.50),
        p(0.99)
    );
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let st = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@x")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@x")
        .status()
        .unwrap();
    assert!(st.success());
}

async fn http_server() -> u16 {
    use http_body_util::Full;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_r| async {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(bytes::Bytes::from_static(b"{\"ok\":true}")))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("repo");
    std::fs::create_dir_all(work.join("src")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for i in 0..200 {
        std::fs::write(
            work.join(format!("src/f{i}.rs")),
            format!("// file {i}\n").repeat(50),
        )
        .unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "files"]);
    let mut repos = BTreeMap::new();
    repos.insert("repo".to_string(), work.clone());
    let g = GitRepos {
        repos,
        max_file_size: ByteSize::mib(1),
        max_entries: 1000,
    };
    let tool = |kind| Tool {
        description: None,
        approval: Approval::None,
        kind,
    };

    measure(
        "git.read_file (1.2 KB)",
        &tool(ToolKind::GitReadFile(g.clone())),
        json!({"repo": "repo", "path": "src/f7.rs"}),
    )
    .await;
    measure(
        "git.list_files (200 entries)",
        &tool(ToolKind::GitListFiles(g.clone())),
        json!({"repo": "repo", "path": "src"}),
    )
    .await;
    measure(
        "git.log (1 commit)",
        &tool(ToolKind::GitLog(g)),
        json!({"repo": "repo"}),
    )
    .await;

    let port = http_server().await;
    let http = HttpRequest {
        base_url: format!("http://127.0.0.1:{port}/v1").parse().unwrap(),
        routes: vec![HttpRoute {
            method: "GET".into(),
            path: "/items/{id}".into(),
            body: None,
        }],
        auth: None,
        max_response_size: ByteSize::kib(64),
        timeout: Duration::from_secs(5),
    };
    measure(
        "http.request (loopback)",
        &tool(ToolKind::HttpRequest(http)),
        json!({"method": "GET", "path": "/items/42"}),
    )
    .await;

    let cluster = pg::PgCluster::start();
    cluster.psql("CREATE TABLE c (id int PRIMARY KEY, name text); INSERT INTO c SELECT g, 'n' || g FROM generate_series(1, 1000) g;");
    let dsn_file = dir.path().join("dsn");
    std::fs::write(&dsn_file, cluster.dsn()).unwrap();
    let q = PostgresQuery {
        dsn: Secret::parse(&format!("${{file:{}}}", dsn_file.display())).unwrap(),
        sql: "SELECT id, name FROM c WHERE id = $1".into(),
        params: vec![SqlParam {
            name: "id".into(),
            ty: SqlType::Integer,
            description: None,
        }],
        max_rows: 1,
        timeout: Duration::from_secs(5),
    };
    measure(
        "postgres.query (1 row, socket)",
        &tool(ToolKind::PostgresQuery(q)),
        json!({"id": 42}),
    )
    .await;
}
