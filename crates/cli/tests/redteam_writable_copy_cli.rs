//! Red-team: what a writable path carries into the jail. Each writable
//! path is a copy of the host's tree there, mounts below it included.
//!
//! * A writable path that holds the jail's scratch directory (`--allow-write
//!   /tmp`, where `$TMPDIR/.airlock-root-UID` is): a copy taken after the
//!   jail's root was mounted there carried that root into the jail, before
//!   its masks were applied, so every hidden file was readable under
//!   `/tmp/.airlock-root-UID/`.
//! * A read-only mount inside a writable path: the copy was made writable
//!   as a whole, so the jail could write what the host cannot.
//!
//! Both callers.

#[macro_use]
mod support;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use support::{chown_jail, workdir, write, Jail};

both_modes!(
    allowing_writes_to_tmp_exposes_no_hidden_file,
    a_read_only_mount_inside_a_writable_path_stays_read_only,
);

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A file outside `/tmp` (the copy of the jail's root under
/// `/tmp/.airlock-root-UID` held the host's tree as it is, not the jail's
/// fresh `/tmp`), readable by the jail's uid, hidden with `--deny-read`.
fn allowing_writes_to_tmp_exposes_no_hidden_file(j: &Jail) {
    let secret_dir = tempfile::Builder::new()
        .prefix("airlock-writable-copy")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(secret_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = secret_dir.path().join("token.txt");
    write(&secret, "TOPSECRET\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = workdir();
    let script = format!(
        "cat {s}; cat /tmp/.airlock-root-*{s}; \
         for d in /tmp/.airlock-root-*/; do [ -e \"$d/etc\" ] && echo COPY; done; echo RAN",
        s = secret.display()
    );
    let out = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(w.path())
        .args(["--allow-write", "/tmp", "--deny-read"])
        .arg(&secret)
        .args(["--", "/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("RAN"), "{out:?}");
    assert!(
        !text.contains("TOPSECRET"),
        "the hidden file was read: {out:?}"
    );
    // The scratch directories are there, empty: no copy of a jail's root.
    assert!(
        !text.contains("COPY"),
        "the jail's root is visible: {out:?}"
    );
}

/// The test's own mount namespace (the host's table stays untouched), with
/// `src` bound read-only at `dst`, for the airlock it starts.
fn read_only_bind(src: &Path, dst: &Path) -> impl FnMut() -> std::io::Result<()> {
    let src = CString::new(src.as_os_str().as_bytes()).unwrap();
    let dst = CString::new(dst.as_os_str().as_bytes()).unwrap();
    move || {
        let ok = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        unsafe {
            ok(libc::unshare(libc::CLONE_NEWNS))?;
            ok(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            ok(libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            ok(libc::mount(
                std::ptr::null(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                std::ptr::null(),
            ))
        }
    }
}

fn a_read_only_mount_inside_a_writable_path_stays_read_only(j: &Jail) {
    if !support::is_root() {
        eprintln!("SKIPPED: making a read-only mount takes a root test process");
        return;
    }
    let d = workdir();
    let w = d.path().join("w");
    let src = d.path().join("shared");
    std::fs::create_dir_all(w.join("ro")).unwrap();
    write(&src.join("data.txt"), "shared\n");
    for p in [&w, &w.join("ro"), &src, &src.join("data.txt")] {
        chown_jail(p);
    }
    let out = j
        .caller_after(support::AIRLOCK, read_only_bind(&src, &w.join("ro")))
        .arg("run")
        .arg("--workdir")
        .arg(&w)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "cat ro/data.txt; echo changed > ro/data.txt; echo new > ro/new.txt; \
             echo mine > mine.txt && echo WROTE-OWN",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("shared"), "the mount is visible: {out:?}");
    assert!(
        text.contains("WROTE-OWN"),
        "the workdir is writable: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(src.join("data.txt")).unwrap(),
        "shared\n"
    );
    assert!(
        !src.join("new.txt").exists(),
        "written through a read-only mount"
    );
}
