//! postgres.query against a real PostgreSQL started from the machine's
//! binaries: typed binding, JSON mapping, read-only transactions, the
//! statement timeout, max_rows enforced by the portal, and the attacks
//! (SQL injection, type confusion, multi-statement SQL, row-limit bypass).
//! One cluster serves every scenario, run in sequence by one test.

mod support;

use std::time::{Duration, Instant};

use airlock_config::{
    Approval, Constraint, PostgresQuery, Secret, SqlParam, SqlType, Tool, ToolKind,
};
use airlock_tools::{build_tool, CallContext, Limits, ToolError, ToolImpl, ToolOutput};
use serde_json::{json, Value};
use support::pg::PgCluster;
use tokio_util::sync::CancellationToken;

struct Env {
    pg: PgCluster,
    dsn: Secret,
    _dir: tempfile::TempDir,
}

fn param(name: &str, ty: SqlType) -> SqlParam {
    SqlParam {
        name: name.into(),
        ty,
        description: None,
    }
}

fn tool(env: &Env, sql: &str, params: Vec<SqlParam>, max_rows: u32, timeout: Duration) -> Tool {
    Tool {
        description: None,
        approval: Approval::None,
        kind: ToolKind::PostgresQuery(PostgresQuery {
            dsn: env.dsn.clone(),
            sql: sql.into(),
            params,
            max_rows,
            timeout,
        }),
    }
}

fn ctx() -> CallContext {
    CallContext {
        agent: "a".into(),
        session: None,
        cancel: CancellationToken::new(),
    }
}

async fn call(
    imp: &dyn ToolImpl,
    t: &Tool,
    c: Option<&Constraint>,
    args: Value,
) -> Result<ToolOutput, ToolError> {
    let limits = Limits::effective(t, c);
    let canon = imp.canonicalize(&args, &limits)?;
    imp.call(&ctx(), canon, &limits).await
}

async fn once(t: &Tool, args: Value) -> Result<ToolOutput, ToolError> {
    let imp = build_tool("q", t).unwrap().unwrap();
    call(imp.as_ref(), t, None, args).await
}

fn rows(out: &ToolOutput) -> Vec<Value> {
    out.structured.as_ref().unwrap()["rows"]
        .as_array()
        .unwrap()
        .clone()
}

const SECS: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_query_tool() {
    let pg = PgCluster::start();
    pg.psql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, status text, balance numeric(14,4), \
           created timestamptz, born date, ext uuid, meta jsonb, avatar bytea, tags text[], score float8, \
           vip boolean, seen timestamp, small int2, iv interval);
         INSERT INTO customers VALUES
           (1, 'Ada', 'active', -1234567.0505, '2024-05-01T12:00:00Z', '1990-02-03',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"tier\": \"gold\", \"n\": [1,2]}', '\\x00ff10', '{a,NULL,c}',
            0.5, true, '2024-05-01 12:00:00.25', 7, '1 day'),
           (2, 'Bob', 'closed', 0.0001, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL),
           (3, 'x'' OR ''1''=''1', 'active', 100, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
         CREATE TABLE big AS SELECT g AS n FROM generate_series(1, 100000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let dsn_file = dir.path().join("dsn");
    std::fs::write(&dsn_file, pg.dsn()).unwrap();
    let env = Env {
        dsn: Secret::parse(&format!("${{file:{}}}", dsn_file.display())).unwrap(),
        pg,
        _dir: dir,
    };

    types_map_to_json(&env).await;
    typed_parameters_bind_exactly(&env).await;
    sql_injection_and_type_confusion(&env).await;
    max_rows_cannot_be_bypassed(&env).await;
    writes_and_multiple_statements_are_refused(&env).await;
    timeout_and_cancel_stop_the_server_query(&env).await;
    secrets_never_leak(&env).await;
    tls_is_verified().await;
}

/// A CA and a server certificate for 127.0.0.1 signed by it (PEM).
fn certs() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "airlock test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// `sslmode=require` gives TLS verified against the trust store and the
/// host name; other modes are plaintext, as asked.
async fn tls_is_verified() {
    let (ca, cert, key) = certs();
    let (other_ca, _, _) = certs();
    let pg = PgCluster::start_tls(&cert, &key);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let other_file = dir.path().join("other.pem");
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&other_file, other_ca).unwrap();
    let dsn_file = dir.path().join("dsn");
    let ssl_query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND $1::int = 1";
    let run = |dsn: String| {
        std::fs::write(&dsn_file, dsn).unwrap();
        let t = Tool {
            description: None,
            approval: Approval::None,
            kind: ToolKind::PostgresQuery(PostgresQuery {
                dsn: Secret::parse(&format!("${{file:{}}}", dsn_file.display())).unwrap(),
                sql: ssl_query.into(),
                params: vec![param("one", SqlType::Integer)],
                max_rows: 1,
                timeout: SECS,
            }),
        };
        async move { once(&t, json!({"one": 1})).await }
    };
    // This test binary runs one test, so changing the process environment is safe here.
    std::env::set_var("SSL_CERT_FILE", &ca_file);
    let out = run(pg.tcp_dsn("sslmode=require")).await.unwrap();
    assert_eq!(rows(&out)[0]["ssl"], true);
    let out = run(pg.tcp_dsn("")).await.unwrap();
    assert_eq!(rows(&out)[0]["ssl"], false, "prefer/disable stay plaintext");
    // The certificate names 127.0.0.1, not localhost: refused (localhost
    // itself is reachable, as the plaintext call shows).
    run(pg.tcp_dsn("").replace("127.0.0.1", "localhost"))
        .await
        .unwrap();
    let e = run(pg
        .tcp_dsn("sslmode=require")
        .replace("127.0.0.1", "localhost"))
    .await
    .unwrap_err();
    assert!(matches!(e, ToolError::Failed(_)), "{e:?}");
    // A server whose CA is not trusted: refused.
    std::env::set_var("SSL_CERT_FILE", &other_file);
    let e = run(pg.tcp_dsn("sslmode=require")).await.unwrap_err();
    assert!(matches!(e, ToolError::Failed(_)), "{e:?}");
    std::env::remove_var("SSL_CERT_FILE");
}

async fn types_map_to_json(env: &Env) {
    let t = tool(
        env,
        "SELECT id, name, balance, created, born, ext, meta, avatar, tags, score, vip, seen, small, iv FROM customers WHERE id = $1",
        vec![param("id", SqlType::Integer)],
        1,
        SECS,
    );
    let out = once(&t, json!({"id": 1})).await.unwrap();
    let r = &rows(&out)[0];
    assert_eq!(r["id"], 1);
    assert_eq!(r["name"], "Ada");
    assert_eq!(r["balance"], "-1234567.0505", "numeric is exact text");
    assert_eq!(r["created"], "2024-05-01T12:00:00Z");
    assert_eq!(r["born"], "1990-02-03");
    assert_eq!(r["ext"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(r["meta"], json!({"tier": "gold", "n": [1, 2]}));
    assert_eq!(r["avatar"], "AP8Q", "bytea as base64");
    assert_eq!(r["tags"], json!(["a", null, "c"]));
    assert_eq!(r["score"], 0.5);
    assert_eq!(r["vip"], true);
    assert_eq!(r["seen"], "2024-05-01T12:00:00.250");
    assert_eq!(r["small"], 7);
    assert!(r["iv"]
        .as_str()
        .unwrap()
        .contains("cast the column to text"));
    let s = out.structured.unwrap();
    assert_eq!(s["truncated"], false);
    assert_eq!(s["columns"][2], "balance");

    let out = once(&t, json!({"id": 2})).await.unwrap();
    let r = &rows(&out)[0];
    assert_eq!(r["balance"], "0.0001");
    for k in [
        "created", "born", "ext", "meta", "avatar", "tags", "score", "seen", "small", "iv",
    ] {
        assert_eq!(r[k], Value::Null, "{k} should be null");
    }
    let out = once(&t, json!({"id": 99})).await.unwrap();
    assert!(rows(&out).is_empty());
}

async fn typed_parameters_bind_exactly(env: &Env) {
    let t = tool(
        env,
        "SELECT count(*)::int AS n FROM customers WHERE created <= $1 AND born < $2 AND ext = $3 AND vip = $4 AND score < $5 AND seen < $6 AND small = $7",
        vec![
            param("before", SqlType::Timestamp),
            param("born_before", SqlType::Date),
            param("ext", SqlType::Uuid),
            param("vip", SqlType::Boolean),
            param("below", SqlType::Float),
            param("seen_before", SqlType::Timestamp),
            param("small", SqlType::BigInt),
        ],
        10,
        SECS,
    );
    let imp = build_tool("q", &t).unwrap().unwrap();
    let args = json!({"before": "2024-05-01T14:00:00+02:00", "born_before": "2000-01-01",
        "ext": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "vip": true, "below": 1, "seen_before": "2024-05-02T00:00:00Z", "small": 7});
    let limits = Limits::effective(&t, None);
    let canon = imp.canonicalize(&args, &limits).unwrap();
    assert_eq!(
        canon["before"], "2024-05-01T12:00:00Z",
        "timestamps canonicalised to UTC"
    );
    assert_eq!(canon["ext"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    let out = imp.call(&ctx(), canon, &limits).await.unwrap();
    assert_eq!(rows(&out)[0]["n"], 1);

    // A value that fits its declared type but not the column's: refused, not truncated.
    let out = call(imp.as_ref(), &t, None, json!({"before": "2024-05-01T14:00:00Z", "born_before": "2000-01-01",
        "ext": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "vip": true, "below": 1, "seen_before": "2024-05-02T00:00:00Z", "small": 70000}))
        .await
        .unwrap_err();
    assert!(
        matches!(&out, ToolError::InvalidArguments(m) if m.contains("int2")),
        "{out:?}"
    );

    let schema = imp.input_schema(&limits);
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["ext"]["format"], "uuid");
    assert_eq!(schema["required"].as_array().unwrap().len(), 7);

    // Declared text for an integer placeholder: a config mistake, reported clearly.
    let t = tool(
        env,
        "SELECT name FROM customers WHERE id = $1",
        vec![param("id", SqlType::Text)],
        1,
        SECS,
    );
    let e = once(&t, json!({"id": "1"})).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::InvalidArguments(m) if m.contains("does not fit")),
        "{e:?}"
    );
}

async fn sql_injection_and_type_confusion(env: &Env) {
    let by_id = tool(
        env,
        "SELECT name FROM customers WHERE id = $1",
        vec![param("id", SqlType::Integer)],
        5,
        SECS,
    );
    for bad in [
        json!({"id": "1; DROP TABLE customers"}),
        json!({"id": "1 OR 1=1"}),
        json!({"id": "1"}),
        json!({"id": 1.5}),
        json!({"id": 1.000001}),
        json!({"id": 2147483648i64}),
        json!({"id": true}),
        json!({"id": null}),
        json!({"id": [1]}),
        json!({"id": {"$gt": 0}}),
        json!({}),
        json!({"id": 1, "sql": "DROP TABLE customers"}),
        json!([1]),
    ] {
        let e = once(&by_id, bad.clone()).await.unwrap_err();
        assert!(
            matches!(e, ToolError::InvalidArguments(_)),
            "{bad} gave {e:?}"
        );
    }
    let by_name = tool(
        env,
        "SELECT id FROM customers WHERE name = $1",
        vec![param("name", SqlType::Text)],
        5,
        SECS,
    );
    for inj in [
        "x' OR '1'='1",
        "'; DROP TABLE customers; --",
        "Ada' --",
        "$1",
        "\\'",
    ] {
        let out = once(&by_name, json!({"name": inj})).await.unwrap();
        let ids: Vec<i64> = rows(&out)
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = if inj == "x' OR '1'='1" {
            vec![3]
        } else {
            vec![]
        };
        assert_eq!(ids, expected, "{inj:?} is data, not SQL");
    }
    let e = once(&by_name, json!({"name": "a\u{0}b"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    let e = once(&by_name, json!({"name": "x".repeat(70_000)}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    assert_eq!(env.pg.psql("SELECT count(*) FROM customers"), "3");
}

async fn max_rows_cannot_be_bypassed(env: &Env) {
    // 10^10 rows if fully evaluated; the portal fetches 6.
    let t = tool(
        env,
        "SELECT a.n FROM big a CROSS JOIN big b WHERE a.n > $1",
        vec![param("min", SqlType::BigInt)],
        5,
        SECS,
    );
    let started = Instant::now();
    let out = once(&t, json!({"min": 0})).await.unwrap();
    assert_eq!(rows(&out).len(), 5);
    assert_eq!(out.structured.as_ref().unwrap()["truncated"], true);
    assert!(out.text.contains("more rows exist"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // An agent constraint narrows further.
    let c = Constraint {
        max_rows: Some(2),
        ..Default::default()
    };
    let imp = build_tool("q", &t).unwrap().unwrap();
    let out = call(imp.as_ref(), &t, Some(&c), json!({"min": 0}))
        .await
        .unwrap();
    assert_eq!(rows(&out).len(), 2);
    // Exactly max_rows is not truncated.
    let out = call(imp.as_ref(), &t, None, json!({"min": 99_999})).await;
    let out = out.unwrap();
    assert_eq!(rows(&out).len(), 5);
    let t1 = tool(
        env,
        "SELECT n FROM big WHERE n > $1",
        vec![param("min", SqlType::BigInt)],
        5,
        SECS,
    );
    let out = once(&t1, json!({"min": 99_995})).await.unwrap();
    assert_eq!(rows(&out).len(), 5);
    assert_eq!(out.structured.unwrap()["truncated"], false);
}

async fn writes_and_multiple_statements_are_refused(env: &Env) {
    let del = tool(
        env,
        "DELETE FROM customers WHERE id = $1 RETURNING id",
        vec![param("id", SqlType::Integer)],
        5,
        SECS,
    );
    let e = once(&del, json!({"id": 1})).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("read-only")),
        "{e:?}"
    );
    let multi = tool(env, "SELECT 1; DELETE FROM customers", vec![], 5, SECS);
    let e = once(&multi, json!({})).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("cannot run")),
        "{e:?}"
    );
    // A statement that tries to leave read-only mode inside the call.
    let escape = tool(env, "SET TRANSACTION READ WRITE", vec![], 5, SECS);
    let e = once(&escape, json!({})).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("read-write mode must be set before any query")),
        "{e:?}"
    );
    let wrong_count = tool(
        env,
        "SELECT $1::int + $2::int",
        vec![param("a", SqlType::Integer)],
        5,
        SECS,
    );
    let e = once(&wrong_count, json!({"a": 1})).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("misconfigured")),
        "{e:?}"
    );
    assert_eq!(env.pg.psql("SELECT count(*) FROM customers"), "3");
}

async fn timeout_and_cancel_stop_the_server_query(env: &Env) {
    let t = tool(
        env,
        "SELECT pg_sleep($1)::text AS s",
        vec![param("secs", SqlType::Float)],
        1,
        Duration::from_millis(500),
    );
    let imp = build_tool("q", &t).unwrap().unwrap();
    let started = Instant::now();
    let e = call(imp.as_ref(), &t, None, json!({"secs": 30}))
        .await
        .unwrap_err();
    assert_eq!(e, ToolError::Timeout(Duration::from_millis(500)));
    assert!(started.elapsed() < Duration::from_secs(3));

    let long = tool(
        env,
        "SELECT pg_sleep($1)::text AS s",
        vec![param("secs", SqlType::Float)],
        1,
        Duration::from_secs(60),
    );
    let imp = build_tool("q", &long).unwrap().unwrap();
    let limits = Limits::effective(&long, None);
    let ctx = ctx();
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let e = imp
        .call(&ctx, json!({"secs": 30}), &limits)
        .await
        .unwrap_err();
    assert_eq!(e, ToolError::Cancelled);
    // The server-side query is cancelled too, not left running.
    let mut running = String::new();
    for _ in 0..50 {
        running = env.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'");
        if running == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, "0", "a cancelled query kept running on the server");
    // The tool still works afterwards (the pool did not keep a broken connection).
    let out = call(imp.as_ref(), &long, None, json!({"secs": 0}))
        .await
        .unwrap();
    assert_eq!(rows(&out).len(), 1);
}

async fn secrets_never_leak(env: &Env) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dsn");
    std::fs::write(
        &f,
        "host=/nonexistent/sock port=5432 user=postgres password=hunter2-secret dbname=x",
    )
    .unwrap();
    let mut t = tool(env, "SELECT 1 AS one", vec![], 1, SECS);
    if let ToolKind::PostgresQuery(q) = &mut t.kind {
        q.dsn = Secret::parse(&format!("${{file:{}}}", f.display())).unwrap();
    }
    let e = once(&t, json!({})).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        !msg.contains("hunter2") && !msg.contains("nonexistent"),
        "{msg}"
    );
    if let ToolKind::PostgresQuery(q) = &mut t.kind {
        q.dsn = Secret::parse("${env:AIRLOCK_TEST_SURELY_UNSET_DSN}").unwrap();
    }
    let e = once(&t, json!({})).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("not available")),
        "{e:?}"
    );
    std::fs::write(&f, "this is = not a dsn password=hunter2 'unterminated").unwrap();
    if let ToolKind::PostgresQuery(q) = &mut t.kind {
        q.dsn = Secret::parse(&format!("${{file:{}}}", f.display())).unwrap();
    }
    let e = once(&t, json!({})).await.unwrap_err();
    assert!(!e.to_string().contains("hunter2"));
    // Debug of the tool config shows the reference, never the value.
    assert!(!format!("{t:?}").contains("hunter2"));
}
