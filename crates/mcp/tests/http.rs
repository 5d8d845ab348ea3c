//! The server over Streamable HTTP, driven with raw requests: auth, Origin,
//! Host, body cap, both protocol generations, policy, approvals, reload.

mod common;

use std::time::Duration;

use airlock_mcp::HttpOptions;
use common::*;
use serde_json::json;

#[tokio::test]
async fn no_key_or_unknown_key_gets_401_and_no_tool_list() {
    let t = start("AIRLOCK_T_KEY_1", HttpOptions::default()).await;
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic Y2k6a2V5"),
        Some("Bearer "),
    ] {
        let extra: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let r = post(t.addr, &extra, &list).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"airlock\"")
        );
        assert!(
            !r.body.contains("echo") && !r.body.contains("secret_tool"),
            "{}",
            r.body
        );
    }
    t.server.shutdown().await;
}

#[tokio::test]
async fn each_agent_lists_and_calls_only_its_tools_legacy_session() {
    let t = start("AIRLOCK_T_KEY_2", HttpOptions::default()).await;
    let sid = open_session(t.addr, KEY_CI).await;
    let r = session_call(t.addr, KEY_CI, &sid, 2, "tools/list", json!({}))
        .await
        .rpc();
    let names: Vec<&str> = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "deploy"]);
    assert_eq!(
        r["result"]["tools"][0]["inputSchema"]["required"],
        json!(["text"])
    );

    let ok = session_call(
        t.addr,
        KEY_CI,
        &sid,
        3,
        "tools/call",
        json!({"name":"echo","arguments":{"text":"hi"},"_meta":{"airlock/intent":"say hi"}}),
    )
    .await
    .rpc();
    assert_eq!(result_text(&ok), "ci: hi");
    assert_ne!(ok["result"]["isError"], json!(true));

    // A tool declared but not allowed to this agent, and one that does not exist.
    let denied = session_call(
        t.addr,
        KEY_CI,
        &sid,
        4,
        "tools/call",
        json!({"name":"secret_tool","arguments":{"text":"x"}}),
    )
    .await
    .rpc();
    assert_eq!(denied["result"]["isError"], json!(true));
    assert!(
        result_text(&denied).contains("not allowed for agent `ci`"),
        "{denied}"
    );
    let unknown = session_call(
        t.addr,
        KEY_CI,
        &sid,
        5,
        "tools/call",
        json!({"name":"rm","arguments":{}}),
    )
    .await
    .rpc();
    assert!(
        result_text(&unknown).contains("no tool named `rm`"),
        "{unknown}"
    );

    // Schema violations are refused before any decision.
    for bad in [
        json!({"text": 5}),
        json!({"text":"a","extra":1}),
        json!({}),
        json!({"text": "x".repeat(1001)}),
    ] {
        let r = session_call(
            t.addr,
            KEY_CI,
            &sid,
            6,
            "tools/call",
            json!({"name":"echo","arguments":bad}),
        )
        .await
        .rpc();
        assert_eq!(r["result"]["isError"], json!(true));
        assert!(result_text(&r).starts_with("invalid arguments:"), "{r}");
    }

    // Well-formed but refused by the tool itself: a denial, not a schema error.
    let r = session_call(
        t.addr,
        KEY_CI,
        &sid,
        7,
        "tools/call",
        json!({"name":"echo","arguments":{"text":"../etc"}}),
    )
    .await
    .rpc();
    assert!(result_text(&r).starts_with("denied: `..`"), "{r}");

    let recs = t.audit.0.lock().unwrap().clone();
    assert_eq!(recs.len(), 8);
    assert_eq!(
        (recs[7].decision, recs[7].status, recs[7].rule.as_str()),
        ("deny", "denied", "tools.echo")
    );
    assert_eq!(recs[0].intent.as_deref(), Some("say hi"));
    assert_eq!(recs[0].session.as_deref(), Some(sid.as_str()));
    assert_eq!((recs[0].decision, recs[0].status), ("allow", "ok"));
    assert_eq!(recs[0].rule, "agents.ci.allowed_tools[echo]");
    assert_eq!((recs[1].decision, recs[1].status), ("deny", "denied"));
    assert_eq!(recs[1].rule, "agents.ci.allowed_tools");
    assert_eq!((recs[3].decision, recs[3].status), ("invalid", "invalid"));
    t.server.shutdown().await;
}

#[tokio::test]
async fn another_agents_key_cannot_use_a_session() {
    let t = start("AIRLOCK_T_KEY_3", HttpOptions::default()).await;
    let sid = open_session(t.addr, KEY_CI).await;
    let r = session_call(t.addr, KEY_REV, &sid, 2, "tools/list", json!({})).await;
    let v = r.rpc();
    assert!(v.get("error").is_some(), "{v}");
    assert!(!r.body.contains("\"echo\""), "{}", r.body);
    let c = session_call(
        t.addr,
        KEY_REV,
        &sid,
        3,
        "tools/call",
        json!({"name":"echo","arguments":{"text":"x"}}),
    )
    .await
    .rpc();
    assert!(c.get("error").is_some(), "{c}");
    // The owner still can.
    let own = session_call(
        t.addr,
        KEY_CI,
        &sid,
        4,
        "tools/call",
        json!({"name":"echo","arguments":{"text":"x"}}),
    )
    .await
    .rpc();
    assert_eq!(result_text(&own), "ci: x");
    t.server.shutdown().await;
}

fn modern(key: &str, method: &str, name: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![
        ("Authorization".to_string(), bearer(key)),
        ("MCP-Protocol-Version".to_string(), "2026-07-28".to_string()),
        ("Mcp-Method".to_string(), method.to_string()),
    ];
    if let Some(n) = name {
        h.push(("Mcp-Name".to_string(), n.to_string()));
    }
    h
}

fn meta() -> serde_json::Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

#[tokio::test]
async fn stateless_2026_07_28_calls_and_header_body_mismatch() {
    let t = start("AIRLOCK_T_KEY_4", HttpOptions::default()).await;
    let h = modern(KEY_REV, "tools/list", None);
    let hr: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = post(
        t.addr,
        &hr,
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta": meta()}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<String> = r.rpc()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["secret_tool"]);

    let h = modern(KEY_REV, "tools/call", Some("secret_tool"));
    let hr: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret_tool","arguments":{"text":"s"},"_meta": meta()}});
    let r = post(t.addr, &hr, &call).await;
    assert_eq!(result_text(&r.rpc()), "reviewer: s");

    // Mcp-Name says one tool, the body calls another: refused before dispatch.
    let h = modern(KEY_REV, "tools/call", Some("echo"));
    let hr: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = post(t.addr, &hr, &call).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Missing Mcp-Method.
    let r = post(
        t.addr,
        &[
            ("Authorization", &bearer(KEY_REV)),
            ("MCP-Protocol-Version", "2026-07-28"),
        ],
        &call,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    t.server.shutdown().await;
}

#[tokio::test]
async fn origin_host_and_body_cap_are_enforced() {
    let opts = HttpOptions {
        allowed_origins: vec!["https://app.example.com".into()],
        max_body: 64 * 1024,
        ..HttpOptions::default()
    };
    let t = start("AIRLOCK_T_KEY_5", opts).await;
    let list = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let auth = bearer(KEY_CI);
    let r = post(
        t.addr,
        &[
            ("Authorization", &auth),
            ("Origin", "https://evil.example.com"),
        ],
        &list,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        t.addr,
        &[
            ("Authorization", &auth),
            ("Origin", "https://app.example.com"),
        ],
        &list,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // DNS rebinding: a foreign Host is refused even with a valid key.
    let body = serde_json::to_vec(&list).unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: attacker.example:80\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    assert_eq!(raw(t.addr, &head, &body).await.status, 403);

    // Oversized arguments: over the body cap is 413, whatever the framing.
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x".repeat(100_000)}}});
    let r = post(
        t.addr,
        &[
            ("Authorization", &auth),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &big,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let chunk = vec![b'x'; 100_000];
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        chunk.len()
    );
    let mut body = chunk.clone();
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(raw(t.addr, &head, &body).await.status, 413);
    t.server.shutdown().await;
}

#[tokio::test]
async fn approval_is_for_the_exact_call_and_cannot_be_reused_or_stretched() {
    let t = start("AIRLOCK_T_KEY_6", HttpOptions::default()).await;
    let sid = open_session(t.addr, KEY_CI).await;
    let call = |text: &'static str, id: u64| {
        session_call(
            t.addr,
            KEY_CI,
            &sid,
            id,
            "tools/call",
            json!({"name":"deploy","arguments":{"text":text}}),
        )
    };
    let first = call("prod", 2).await.rpc();
    let msg = result_text(&first);
    assert!(msg.starts_with("needs approval"), "{msg}");
    let hash = msg.split("hash ").nth(1).unwrap()[..64].to_string();
    let h = airlock_policy::CallHash::from_hex(&hash).unwrap();
    assert_eq!(
        h,
        airlock_policy::call_hash("deploy", &json!({"text":"prod"}))
    );

    // The operator approves that hash (as `airlock approve` does).
    let store = airlock_policy::ApprovalStore::open(&t._dir.path().join("approvals.db")).unwrap();
    store
        .approve(&h, "operator", Duration::from_secs(600))
        .unwrap();

    // Changed arguments are a different call: still needs approval.
    assert!(result_text(&call("prod2", 3).await.rpc()).starts_with("needs approval"));
    // Another agent cannot use it (and does not even have the tool).
    assert_eq!(
        t.shared
            .snapshot()
            .policy
            .decide("reviewer", "deploy", &json!({"text":"prod"}))
            .label(),
        "deny"
    );
    // The exact call runs once …
    assert_eq!(result_text(&call("prod", 4).await.rpc()), "ci: prod");
    // … and not twice.
    assert!(result_text(&call("prod", 5).await.rpc()).starts_with("needs approval"));
    let recs = t.audit.0.lock().unwrap().clone();
    let statuses: Vec<&str> = recs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            "pending_approval",
            "pending_approval",
            "ok",
            "pending_approval"
        ]
    );
    assert_eq!(recs[2].rule, format!("approval {hash}"));
    t.server.shutdown().await;
}

#[tokio::test]
async fn reload_removes_keys_atomically_and_a_bad_config_keeps_the_old_policy() {
    let t = start("AIRLOCK_T_KEY_7", HttpOptions::default()).await;
    let sid = open_session(t.addr, KEY_CI).await;
    let call = json!({"name":"echo","arguments":{"text":"a"}});
    assert_eq!(
        result_text(
            &session_call(t.addr, KEY_CI, &sid, 2, "tools/call", call.clone())
                .await
                .rpc()
        ),
        "ci: a"
    );

    // A config the policy refuses (allowed tool not declared) changes nothing.
    let mut broken = load(&yaml("AIRLOCK_T_KEY_7"));
    broken
        .agents
        .get_mut("ci")
        .unwrap()
        .allowed_tools
        .push("ghost".into());
    assert!(t.shared.reload(&broken).is_err());
    assert_eq!(
        result_text(
            &session_call(t.addr, KEY_CI, &sid, 3, "tools/call", call.clone())
                .await
                .rpc()
        ),
        "ci: a"
    );

    // The ci agent's key is removed: the very next request is 401, session or not.
    let mut cfg = load(&yaml("AIRLOCK_T_KEY_7"));
    cfg.agents.get_mut("ci").unwrap().keys.clear();
    t.shared.reload(&cfg).unwrap();
    let r = session_call(t.addr, KEY_CI, &sid, 4, "tools/call", call).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let m = raw(
        t.addr,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert!(
        m.body
            .contains("airlock_mcp_reloads_total{result=\"ok\"} 1"),
        "{}",
        m.body
    );
    assert!(m
        .body
        .contains("airlock_mcp_reloads_total{result=\"failed\"} 1"));
    assert!(m
        .body
        .contains("airlock_mcp_calls_total{tool=\"echo\",outcome=\"allowed_ok\"} 2"));
    t.server.shutdown().await;
}

#[tokio::test]
async fn healthz_metrics_key_and_graceful_shutdown() {
    let opts = HttpOptions {
        metrics_key: Some("m-key".into()),
        ..HttpOptions::default()
    };
    let t = start("AIRLOCK_T_KEY_8", opts).await;
    let h = raw(
        t.addr,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let m = raw(
        t.addr,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(m.status, 401);
    let m = raw(t.addr, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer m-key\r\nConnection: close\r\n\r\n", b"").await;
    assert_eq!(m.status, 200);
    let addr = t.addr;
    tokio::time::timeout(Duration::from_secs(15), t.server.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn gateway_identity_assertions_name_the_agent_and_bad_ones_are_refused() {
    use std::time::SystemTime;

    use airlock_identity::{Claims, Signer, Verifier, HEADER};

    let gateway = Signer::generate().unwrap();
    let forger = Signer::generate().unwrap();
    let opts = HttpOptions {
        gateway_identity: Some(std::sync::Arc::new(airlock_mcp::GatewayIdentity {
            verifier: Verifier::new(vec![gateway.public_key()]),
            tunnel: Some("corp".into()),
            route: Some("tools".into()),
        })),
        ..HttpOptions::default()
    };
    let t = start("AIRLOCK_T_KEY_9", opts).await;
    let assert = |signer: &Signer, agent: &str, route: &str, rid: &str| {
        signer
            .sign(
                &Claims::new(agent, "corp", route, rid, None),
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap()
    };
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta": meta()}});
    let modern_list = |h: String| {
        let hs = [
            (HEADER.to_string(), h),
            ("MCP-Protocol-Version".to_string(), "2026-07-28".to_string()),
            ("Mcp-Method".to_string(), "tools/list".to_string()),
        ];
        let list = list.clone();
        async move {
            let hr: Vec<(&str, &str)> = hs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            post(t.addr, &hr, &list).await
        }
    };

    // A valid assertion, no Bearer key: the asserted agent's tools.
    let good = assert(&gateway, "reviewer", "tools", "r1");
    let r = modern_list(good.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("secret_tool") && !r.body.contains("\"echo\""),
        "{}",
        r.body
    );
    // Replayed, forged, wrong route, garbage: 401, and the answer does not
    // pretend the caller forgot a key.
    for bad in [
        good,
        assert(&forger, "reviewer", "tools", "r2"),
        assert(&gateway, "reviewer", "other-route", "r3"),
        "v1.garbage.garbage".to_string(),
    ] {
        let r = modern_list(bad.clone()).await;
        assert_eq!(r.status, 401, "{bad}: {}", r.body);
        assert_eq!(r.body, "gateway identity assertion refused\n");
    }
    // A valid assertion for an agent this config lacks (the gateway knows
    // it, this server does not): 401 that says so, and an audit record
    // naming the agent, tunnel and route.
    let r = modern_list(assert(&gateway, "ci-agent", "tools", "r4")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.body.contains("not configured on this server") && !r.body.contains("missing"),
        "{}",
        r.body
    );
    {
        let auth = t.audit.1.lock().unwrap();
        assert_eq!(auth.len(), 5, "{auth:?}");
        assert!(auth[..4]
            .iter()
            .all(|a| a.rule == "gateway_identity.verify" && a.decision == "deny"));
        let last = &auth[4];
        assert_eq!(last.rule, "gateway_identity.agent_not_configured");
        assert_eq!(last.decision, "deny");
        assert_eq!(last.agent.as_deref(), Some("ci-agent"));
        assert_eq!(last.tunnel.as_deref(), Some("corp"));
        assert_eq!(last.route.as_deref(), Some("tools"));
        assert!(t.audit.0.lock().unwrap().is_empty(), "no tool call audited");
    }
    // A bad assertion is not rescued by a valid Bearer key.
    let forged = assert(&forger, "ci", "tools", "r5");
    let r = post(
        t.addr,
        &[
            (HEADER, &forged),
            ("Authorization", &bearer(KEY_CI)),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
        ],
        &list,
    )
    .await;
    assert_eq!(r.status, 401);
    t.server.shutdown().await;
}
