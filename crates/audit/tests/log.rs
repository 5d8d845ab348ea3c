//! The audit log against the attacks and accidents it must survive:
//! every kind of tampering is caught at its first bad position, a crash
//! leaves a log that verifies, secrets never reach the disk.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_audit::verify::{verify, Verdict};
use airlock_audit::{open, AuditHandle, Egress, Event, Kind, LogOptions, PublicKey, SigningKey};
use airlock_config::Audit;
use serde_json::json;

struct Log {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    key_path: PathBuf,
    public: PublicKey,
}

fn new_log() -> Log {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key_path = tmp.path().join("audit.key");
    let (k, _) = SigningKey::write_new(&key_path).unwrap();
    Log {
        public: k.public(),
        _tmp: tmp,
        dir,
        key_path,
    }
}

fn cfg(l: &Log) -> Audit {
    Audit {
        dir: l.dir.clone(),
        signing_key: Some(l.key_path.clone()),
        checkpoint_every: 10,
        ..Audit::default()
    }
}

fn event(i: u64) -> Event {
    Event::new(Kind::ToolCall)
        .agent("ci-bot")
        .session(Some(format!("s{}", i % 3)))
        .tool(if i % 2 == 0 {
            "git.read_file"
        } else {
            "postgres.query"
        })
        .args(json!({"repo": "api", "path": format!("src/{i}.rs")}))
        .decision(i % 5 != 0, "agents.ci-bot.allowed_tools", None)
        .status("ok")
        .duration(Duration::from_micros(1500))
}

/// Writes `n` events and closes (which writes a final checkpoint).
fn write(l: &Log, n: u64) {
    let h = open(&cfg(l), LogOptions::default()).unwrap();
    for i in 1..=n {
        h.record(event(i)).unwrap();
    }
    h.close();
}

fn segment(l: &Log) -> PathBuf {
    l.dir.join("00000001.jsonl")
}

fn lines(l: &Log) -> Vec<String> {
    std::fs::read_to_string(segment(l))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn put_lines(l: &Log, v: &[String]) {
    std::fs::write(
        segment(l),
        v.iter().map(|s| format!("{s}\n")).collect::<String>(),
    )
    .unwrap();
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

#[test]
fn an_untouched_log_verifies_and_every_record_is_proven() {
    let l = new_log();
    write(&l, 25);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Ok, "{r:?}");
    assert_eq!(r.records, 25);
    assert_eq!(r.checkpoints, 3); // after 10, 20, and the final one
    assert_eq!(r.unproven, 0);
    // Reopening continues the chain.
    write(&l, 5);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!((r.verdict, r.records), (Verdict::Ok, 30), "{r:?}");
}

#[test]
fn an_edited_byte_is_found_at_its_record() {
    let l = new_log();
    write(&l, 25);
    let mut v = lines(&l);
    // Record 7 (line 7: no checkpoint before seq 11): change one character.
    assert_eq!(seq_of(&v[6]), 7);
    v[6] = v[6].replacen("src/7.rs", "src/8.rs", 1);
    put_lines(&l, &v);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(r.problem.unwrap().seq, Some(7));
}

#[test]
fn a_deleted_record_is_named() {
    let l = new_log();
    write(&l, 25);
    let mut v = lines(&l);
    v.remove(4); // seq 5
    put_lines(&l, &v);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    let p = r.problem.unwrap();
    assert_eq!(p.seq, Some(5));
    assert!(p.message.contains("deleted"), "{}", p.message);
}

#[test]
fn swapped_records_are_caught() {
    let l = new_log();
    write(&l, 25);
    let mut v = lines(&l);
    v.swap(2, 3); // seq 3 and 4
    put_lines(&l, &v);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(r.problem.unwrap().seq, Some(3));
}

#[test]
fn an_inserted_forged_record_is_caught_even_with_a_recomputed_chain() {
    let l = new_log();
    write(&l, 25);
    let v = lines(&l);
    // Naive insertion: a copy of seq 4 placed after it.
    let mut naive = v.clone();
    naive.insert(4, v[3].clone());
    put_lines(&l, &naive);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(r.problem.unwrap().seq, Some(5));
    // Careful forgery: insert, renumber and re-chain everything after it.
    // Only the signed checkpoint that covers the range can tell.
    let mut forged: Vec<serde_json::Value> =
        v.iter().map(|s| serde_json::from_str(s).unwrap()).collect();
    let mut fake = forged[3].clone();
    fake["tool"] = json!("postgres.query");
    fake["args"] = json!({"sql": "DROP TABLE users"});
    forged.insert(4, fake);
    let mut prev = airlock_audit::GENESIS.to_string();
    let mut out = Vec::new();
    for (i, rec) in forged.iter_mut().enumerate() {
        rec["seq"] = json!(i as u64 + 1);
        rec["prev"] = json!(prev);
        let line = String::from_utf8(airlock_audit::canonical::to_vec(rec)).unwrap();
        prev = airlock_audit::keys::hex(&airlock_audit::keys::sha256(line.as_bytes()));
        out.push(line);
    }
    put_lines(&l, &out);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    let p = r.problem.unwrap();
    assert!(p.message.contains("checkpoint"), "{}", p.message);
    assert_eq!(
        p.seq,
        Some(12),
        "the first checkpoint (now at seq 12) covers the forgery"
    );
}

#[test]
fn tail_truncation_is_unproven_not_fine() {
    let l = new_log();
    write(&l, 25);
    let mut v = lines(&l);
    v.pop(); // the final checkpoint
    put_lines(&l, &v);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Unproven, "{r:?}");
    assert_eq!(r.unproven, 5);
    assert_eq!(r.proven_through, Some(22));
}

#[test]
fn a_replaced_checkpoint_is_caught() {
    let l = new_log();
    write(&l, 25);
    let v = lines(&l);
    // Re-sign checkpoint seq 11 with an attacker's key.
    let mut cp: serde_json::Value = serde_json::from_str(&v[10]).unwrap();
    assert_eq!(cp["kind"], "checkpoint");
    let evil = SigningKey::generate();
    cp["key"] = json!(evil.public().to_text());
    cp.as_object_mut().unwrap().remove("sig");
    let sig = evil.sign(&airlock_audit::canonical::to_vec(&cp));
    cp["sig"] = json!(airlock_audit::keys::hex(&sig));
    let mut v2 = v.clone();
    v2[10] = String::from_utf8(airlock_audit::canonical::to_vec(&cp)).unwrap();
    put_lines(&l, &v2);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    let p = r.problem.unwrap();
    assert_eq!(p.seq, Some(11));
    assert!(p.message.contains("signature"), "{}", p.message);
    // A deleted checkpoint breaks the checkpoint chain.
    let mut v3 = v.clone();
    v3.remove(10);
    put_lines(&l, &v3);
    assert_eq!(
        verify(&l.dir, Some(&l.public)).unwrap().verdict,
        Verdict::Tampered
    );
}

#[test]
fn a_torn_last_line_is_reported_and_recorded_on_restart() {
    let l = new_log();
    write(&l, 12);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(segment(&l))
        .unwrap();
    f.write_all(b"{\"kind\":\"tool_call\",\"seq\":14,\"to")
        .unwrap();
    drop(f);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Unproven);
    assert!(r.notes.iter().any(|n| n.contains("cut short")), "{r:?}");
    // The next writer starts a new segment with a recovery record.
    write(&l, 3);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Ok, "{r:?}");
    assert!(
        r.notes.iter().any(|n| n.contains("torn last line")),
        "{r:?}"
    );
    let second = std::fs::read_to_string(l.dir.join("00000002.jsonl")).unwrap();
    assert!(second
        .lines()
        .next()
        .unwrap()
        .contains("\"kind\":\"recovery\""));
    // Cutting the recovery record out is tampering.
    let rest: String = second.lines().skip(1).map(|s| format!("{s}\n")).collect();
    std::fs::write(l.dir.join("00000002.jsonl"), rest).unwrap();
    assert_eq!(
        verify(&l.dir, Some(&l.public)).unwrap().verdict,
        Verdict::Tampered
    );
}

#[test]
fn segments_rotate_and_still_verify() {
    let l = new_log();
    let mut c = cfg(&l);
    c.segment_size = airlock_config::ByteSize(8 * 1024);
    let h = open(&c, LogOptions::default()).unwrap();
    for i in 1..=200 {
        h.record(event(i)).unwrap();
    }
    h.close();
    let n = std::fs::read_dir(&l.dir).unwrap().count();
    assert!(n > 3, "{n} segments");
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!((r.verdict, r.records), (Verdict::Ok, 200), "{r:?}");
}

#[test]
fn durable_records_return_their_sequence_and_unsigned_logs_are_unproven() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Audit {
        dir: tmp.path().join("a"),
        ..Audit::default()
    };
    let h = open(&c, LogOptions::default()).unwrap();
    assert_eq!(h.record_durable(event(1)).unwrap(), 1);
    assert_eq!(h.record_durable(event(2)).unwrap(), 2);
    h.close();
    let r = verify(&c.dir, None).unwrap();
    assert_eq!(r.verdict, Verdict::Unproven);
    assert!(r.notes.iter().any(|n| n.contains("unsigned")));
}

/// Polls `done` for up to 10 s (a liveness bound, not a timing check).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A config whose only reason to fsync is `flush_interval` or a waiter
/// (no checkpoint, which also commits, within the test).
fn without_checkpoints(l: &Log, flush_interval: Duration) -> Audit {
    Audit {
        flush_interval,
        checkpoint_every: 1_000_000,
        checkpoint_interval: Duration::from_secs(3600),
        ..cfg(l)
    }
}

#[test]
fn records_nobody_waits_for_share_one_fsync_within_flush_interval() {
    let l = new_log();
    let c = without_checkpoints(&l, Duration::from_secs(3600));
    let h = open(&c, LogOptions::default()).unwrap();
    let before = h.commits();
    for i in 1..=50 {
        h.record(event(i)).unwrap();
    }
    // Written without a waiter (within the writer's 1 ms gather)...
    wait_for("records not written", || lines(&l).len() >= 50);
    // ...but not one fsync each: within the hour's flush_interval none yet.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.commits(), before, "fsync without a waiter or a deadline");
    // A caller that waits gets its fsync at once, covering the earlier ones.
    assert_eq!(h.record_durable(event(51)).unwrap(), 51);
    assert_eq!(h.commits(), before + 1);
    h.flush().unwrap();
    h.close();
}

#[test]
fn a_record_nobody_waits_for_is_fsynced_once_flush_interval_passes() {
    let l = new_log();
    let c = without_checkpoints(&l, Duration::from_millis(20));
    let h = open(&c, LogOptions::default()).unwrap();
    let before = h.commits();
    h.record(event(1)).unwrap();
    // The writer wakes for the deadline by itself; no later record or
    // flush prompts it.
    wait_for("a record waited past flush_interval for its fsync", || {
        h.commits() != before
    });
    h.close();
}

#[test]
fn records_queue_while_the_writer_gathers_and_a_waiter_or_close_ends_the_wait() {
    let l = new_log();
    let c = without_checkpoints(&l, Duration::from_secs(3600));
    // A gather far longer than the test: only a waiter or close ends it.
    let opts = LogOptions {
        gather: Some(Duration::from_secs(600)),
        ..LogOptions::default()
    };
    let h = open(&c, opts).unwrap();
    h.record(event(1)).unwrap();
    wait_for("first record not written", || !lines(&l).is_empty());
    // The writer now gathers: later records queue without waking it.
    for i in 2..=5 {
        h.record(event(i)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        lines(&l).len(),
        1,
        "records written while the writer gathers"
    );
    // A caller that waits wakes it: everything queued is written with its record.
    let t = std::time::Instant::now();
    assert_eq!(h.record_durable(event(6)).unwrap(), 6);
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "a waiter waited out the gather"
    );
    assert_eq!(lines(&l).len(), 6);
    // So does close, for records handed over during the next gather.
    h.record(event(7)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    h.record(event(8)).unwrap();
    let t = std::time::Instant::now();
    h.close();
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "close waited out the gather"
    );
    let seqs: Vec<u64> = lines(&l)
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .filter_map(|r| r.get("seq").and_then(|s| s.as_u64()))
        .collect();
    assert!((1..=8).all(|s| seqs.contains(&s)), "lost records: {seqs:?}");
}

#[test]
fn the_signing_key_must_live_outside_the_log_and_be_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    std::fs::create_dir_all(&dir).unwrap();
    let inside = dir.join("k");
    SigningKey::write_new(&inside).unwrap();
    let e = open(
        &Audit {
            dir: dir.clone(),
            signing_key: Some(inside),
            ..Audit::default()
        },
        LogOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("outside the audit directory"), "{e}");
    let open_key = tmp.path().join("k2");
    SigningKey::write_new(&open_key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = open(
        &Audit {
            dir,
            signing_key: Some(open_key),
            ..Audit::default()
        },
        LogOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
}

/// Shared buffer for the export test.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// (format, a raw secret in that format, the placeholder kind)
fn secrets() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("github classic", format!("ghp_{}", &"A1b2C3d4E5".repeat(4)[..36]), "github-token"),
        ("github fine-grained", format!("github_pat_11ABCDEFG0{}", "x7Yz".repeat(12)), "github-pat"),
        ("gitlab", "glpat-Zq3xY8vW2uT5sR1pQ9nM".to_string(), "gitlab-token"),
        ("slack bot", "xoxb-2148-1234567890-AbCdEfGhIjKlMnOp".to_string(), "slack-token"),
        ("slack webhook", "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX".to_string(), "slack-webhook"),
        ("stripe", format!("sk_live_{}", "51HxYz9AbCdEfGhIjK"), "stripe-key"),
        ("aws key id", "AKIAIOSFODNN7EXAMPLE".to_string(), "aws-access-key-id"),
        ("gcp api key", format!("AIza{}", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"), "gcp-api-key"),
        ("google oauth secret", "GOCSPX-1a2B3c4D5e6F7g8H9i0JkLmNoP".to_string(), "google-oauth-secret"),
        ("google oauth token", "ya29.a0AfH6SMBx3dVzQk9L2mN4pR7sT8uV".to_string(), "google-oauth-token"),
        ("openai", format!("sk-proj-{}", "Ab3dEf6hIj9lMn2pQr5tUv8x"), "openai-key"),
        ("anthropic", format!("sk-ant-api03-{}", "Xy7Zq2Wv4Ut6Sr8Qp0On1Ml3"), "anthropic-key"),
        ("hugging face", format!("hf_{}", "AbCdEfGhIjKlMnOpQrStUvWxYz0123"), "huggingface-token"),
        ("npm", format!("npm_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"), "npm-token"),
        ("pypi", format!("pypi-AgEIcHlwaS5vcmc{}", "CJDk5YWMtNGU3Ni00ZDM3LTgyYTYtYzQ0ZGQ4NzE1ZjEwMAACKlsz"), "pypi-token"),
        ("docker hub", "dckr_pat_2b3e36beeb386dfdaacb9b46004".to_string(), "dockerhub-token"),
        ("sendgrid", "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".to_string(), "sendgrid-key"),
        ("twilio", "SK0123456789abcdef0123456789abcdef".to_string(), "twilio-key"),
        ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.dGhpc2lzYXNpZ25hdHVyZQ".to_string(), "jwt"),
        ("private key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----".to_string(), "private-key"),
        ("url password", "postgres://app:Tr0ub4dor-and-3@db.internal:5432/prod".to_string(), "url-password"),
        ("bearer header", "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0".to_string(), "auth-header"),
        ("azure storage", format!("DefaultEndpointsProtocol=https;AccountName=x;AccountKey={}==", "q".repeat(20) + &"Zx9".repeat(10)), "azure-storage-key"),
        ("keyword high entropy", "password=h7Gq2mZ9xK4vP1wR".to_string(), "keyword-secret"),
        ("aws secret after keyword", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string(), "aws-secret-key"),
        ("shopify", format!("shpat_{}", "0123456789abcdef0123456789abcdef"), "shopify-token"),
    ]
}

/// The secret part of a sample (the bit that must never reach the disk).
fn core(raw: &str) -> &str {
    if let Some(i) = raw.find("Tr0ub4dor") {
        return &raw[i..i + 15];
    }
    if let Some(r) = raw.strip_prefix("Bearer ") {
        return r;
    }
    if let Some(r) = raw.split("AccountKey=").nth(1) {
        return r;
    }
    if let Some(r) = raw.strip_prefix("password=") {
        return r;
    }
    if let Some(r) = raw.split("= ").nth(1) {
        return r;
    }
    raw
}

#[test]
fn at_least_twenty_secret_formats_never_reach_the_disk_or_the_export() {
    let l = new_log();
    let buf = Buf::default();
    let h: AuditHandle = open(
        &cfg(&l),
        LogOptions {
            export_to: Some(Box::new(buf.clone())),
            ..LogOptions::default()
        },
    )
    .unwrap();
    let s = secrets();
    assert!(s.len() >= 20);
    for (name, raw, _) in &s {
        h.record(
            Event::new(Kind::ToolCall)
                .agent("a")
                .tool("http.request")
                .args(json!({"note": format!("{name}: {raw} end"), "nested": [{"x": raw}]}))
                .result(format!("got {raw}"))
                .intent(Some(format!("use {raw}"))),
        )
        .unwrap();
    }
    // Field names are redacted whatever the value looks like.
    h.record(Event::new(Kind::ToolCall).args(
        json!({"password": "hunter2", "Api-Key": "plain", "headers": {"Authorization": "x"}}),
    ))
    .unwrap();
    // A resolved secret is redacted by value, even without a known format.
    h.add_known_secret("DB_PASSWORD", "correct horse battery staple");
    h.record(
        Event::new(Kind::Egress)
            .result("login with correct horse battery staple")
            .egress(Egress {
                host: "db".into(),
                port: 5432,
                credential: Some("DB_PASSWORD".into()),
                ..Egress::default()
            }),
    )
    .unwrap();
    h.close();
    let disk: String = std::fs::read_dir(&l.dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let exported = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for out in [&disk, &exported] {
        for (name, raw, kind) in &s {
            assert!(!out.contains(core(raw)), "{name} reached the output");
            assert!(
                out.contains(&format!("[REDACTED:{kind}:")),
                "{name}: no {kind} placeholder"
            );
        }
        for plain in ["hunter2", "\"plain\"", "correct horse"] {
            assert!(!out.contains(plain), "{plain} reached the output");
        }
        assert!(out.contains("[REDACTED:DB_PASSWORD:"));
        assert!(out.contains("[REDACTED:field-password:"));
    }
    // Same secret, same fingerprint: two uses can be matched.
    let gh = &s[0].1;
    let fp: Vec<&str> = disk
        .match_indices("[REDACTED:github-token:")
        .map(|(i, _)| &disk[i..i + 30])
        .collect();
    assert!(
        fp.len() >= 3 && fp.iter().all(|f| *f == fp[0]),
        "{fp:?} for {gh}"
    );
    assert_eq!(
        verify(&l.dir, Some(&l.public)).unwrap().verdict,
        Verdict::Ok
    );
}

/// The child half of the crash test: appends forever, printing each
/// sequence number once it is durable.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("AIRLOCK_AUDIT_CRASH_DIR") else {
        return;
    };
    let key = std::env::var("AIRLOCK_AUDIT_CRASH_KEY").unwrap();
    let c = Audit {
        dir: dir.into(),
        signing_key: Some(key.into()),
        checkpoint_every: 50,
        ..Audit::default()
    };
    let h = open(&c, LogOptions::default()).unwrap();
    let out = std::io::stdout();
    let mut i = 0;
    loop {
        i += 1;
        for _ in 0..20 {
            h.record(event(i)).unwrap();
        }
        let seq = h.record_durable(event(i)).unwrap();
        let mut o = out.lock();
        let _ = writeln!(o, "{seq}");
        let _ = o.flush();
    }
}

#[test]
fn kill_9_during_heavy_appends_leaves_a_log_that_verifies() {
    use std::io::{BufRead, BufReader};
    let l = new_log();
    std::fs::create_dir_all(&l.dir).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("AIRLOCK_AUDIT_CRASH_DIR", &l.dir)
        .env("AIRLOCK_AUDIT_CRASH_KEY", &l.key_path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut last_durable = 0u64;
    let mut rd = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while last_durable < 3000 {
        line.clear();
        if rd.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Ok(n) = line.trim().parse() {
            last_durable = n;
        }
    }
    unsafe { libc_kill(child.id() as i32) };
    let _ = child.wait();
    assert!(last_durable >= 3000, "child wrote only {last_durable}");
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_ne!(r.verdict, Verdict::Tampered, "{r:?}");
    assert!(
        r.records + r.checkpoints >= last_durable,
        "lost acknowledged records: {r:?} vs {last_durable}"
    );
    // After a restart, the log is whole again.
    write(&l, 1);
    let r = verify(&l.dir, Some(&l.public)).unwrap();
    assert_eq!(r.verdict, Verdict::Ok, "{r:?}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill_raw(pid: i32, sig: i32) -> i32;
}
unsafe fn libc_kill(pid: i32) {
    libc_kill_raw(pid, 9);
}
