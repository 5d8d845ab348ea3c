//! Thin, checked wrappers over the raw system calls the init uses. Each
//! error names the call and the path, so a failed setup says what failed.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub type Result<T> = std::result::Result<T, String>;

pub fn cstr(p: impl AsRef<OsStr>) -> Result<CString> {
    CString::new(p.as_ref().as_bytes()).map_err(|_| "path contains a NUL byte".to_string())
}

pub fn check(rc: libc::c_int, what: impl FnOnce() -> String) -> Result<libc::c_int> {
    if rc < 0 {
        Err(format!("{}: {}", what(), io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

pub fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let s = src.map(cstr).transpose()?;
    let t = cstr(target)?;
    let f = fstype.map(cstr).transpose()?;
    let d = data.map(cstr).transpose()?;
    let rc = unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            d.as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr() as *const libc::c_void),
        )
    };
    check(rc, || {
        format!(
            "mount {} on {}",
            src.map(|p| p.display().to_string())
                .or(fstype.map(str::to_string))
                .unwrap_or_default(),
            target.display()
        )
    })?;
    Ok(())
}

/// Moves this process to the idle scheduling class (else nice 19): for
/// work nobody waits for, such as the jail's own exit once the launcher
/// has the status, so that it does not take a CPU from the launcher's
/// clean-up. Lowering needs no privilege; a failure changes nothing.
pub fn lower_priority() {
    let p = libc::sched_param { sched_priority: 0 };
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) } != 0 {
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets/clears mount attributes on the mount at `target` (and every mount
/// below it when `recursive`), in one call, with no remount races.
pub fn mount_setattr(target: &Path, recursive: bool, set: u64, clr: u64) -> Result<()> {
    let t = cstr(target)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_NO_AUTOMOUNT | if recursive { libc::AT_RECURSIVE } else { 0 };
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            t.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc as libc::c_int, || {
        format!("mount_setattr {}", target.display())
    })?;
    Ok(())
}

/// Writes a whole small file (proc/cgroup control files).
pub fn write_file(path: &Path, data: &str) -> Result<()> {
    std::fs::write(path, data).map_err(|e| format!("write {}: {e}", path.display()))
}

pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
