//! The exit holder of a detached run ([`crate::JailSpec::detached`]: the
//! caller exits right after it), which also removes the run's cgroup.
//!
//! It takes the address space's teardown off the caller's exit. The exit
//! of the process whose last thread drops the memory unmaps it all (page
//! tables, the pages the binary's relocation copied, the heap, the thread
//! stacks) before its parent is told: 0.5-0.7 ms here in scheduler traces
//! between the launcher's last thread's exit and the caller's `wait`
//! returning, against ~0.25 ms for bwrap. This process shares the memory
//! (`CLONE_VM`, not a thread: it has its own descriptors and signal
//! state), so the launcher's exit only drops a reference; it waits on a
//! pipe whose write end only the launcher holds, and acts once that closes
//! (the launcher has exited, however it ended), at idle priority, after
//! the caller has its status.
//!
//! Then, when the launcher left it the job, it waits for the jail's init
//! to exit (a pidfd the launcher opened while the init was its unreaped
//! child, so it names that process and no other) and removes the run's
//! cgroup directories. That job was a forked cleaner's, whose `fork` cost
//! the launcher 0.12-0.25 ms (`perf trace`) before the jail's spec was
//! sent, the launcher's critical path.
//!
//! It runs no libc code and allocates nothing: it shares the launcher's
//! thread-local storage (errno) and heap, so it makes raw system calls
//! only, on a stack of its own, and reads the job from memory the launcher
//! leaked for it before exiting. It holds no descriptor but its pipe's read
//! end and that pidfd, and it adds no reader of the launcher's memory: it
//! is the launcher's uid, with the launcher's memory, and it runs no code
//! but this.

use std::path::PathBuf;

/// Whether this build has the holder (x86-64 glibc Linux). Elsewhere a
/// detached run forks a cleaner instead.
pub const SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    target_env = "gnu",
    target_arch = "x86_64"
));

/// The cgroup to remove once the init has exited.
pub struct Job {
    pub v2: bool,
    pub dirs: Vec<PathBuf>,
}

#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
mod imp {
    use std::ffi::{c_char, c_int, c_void, CString};
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

    const STACK: usize = 16 * 1024;
    /// How often a busy cgroup directory is retried (1 ms apart), as
    /// [`crate::cgroup::Cgroup::remove_dirs`] does.
    const RMDIR_TRIES: u32 = 500;

    #[repr(C, align(16))]
    struct Stack(std::cell::UnsafeCell<[u8; STACK]>);
    // Only the one holder process ever touches it.
    unsafe impl Sync for Stack {}
    static HOLDER_STACK: Stack = Stack(std::cell::UnsafeCell::new([0; STACK]));
    static STARTED: AtomicBool = AtomicBool::new(false);
    static RUNNING: AtomicBool = AtomicBool::new(false);

    /// The job as the holder reads it: leaked C strings, never freed.
    #[repr(C)]
    struct RawJob {
        /// `cgroup.kill` of a v2 group, or null.
        kill: *const c_char,
        dirs: *const *const c_char,
        ndirs: usize,
    }
    static JOB: AtomicPtr<RawJob> = AtomicPtr::new(std::ptr::null_mut());

    /// Arguments of `holder_main`, in static memory.
    struct Fds {
        pipe: AtomicPtr<c_void>,
        pidfd: AtomicPtr<c_void>,
    }
    static FDS: Fds = Fds {
        pipe: AtomicPtr::new(std::ptr::null_mut()),
        pidfd: AtomicPtr::new(std::ptr::null_mut()),
    };

    pub fn start(init: libc::pid_t) -> bool {
        if STARTED.swap(true, Ordering::SeqCst) {
            return RUNNING.load(Ordering::SeqCst);
        }
        let mut fds = [0; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return false;
        }
        let [r, w] = fds;
        // While the init is our unreaped child its pid cannot be reused.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, init, 0) } as c_int;
        FDS.pipe.store(r as isize as *mut c_void, Ordering::SeqCst);
        FDS.pidfd
            .store(pidfd as isize as *mut c_void, Ordering::SeqCst);
        let top = unsafe { (HOLDER_STACK.0.get() as *mut u8).add(STACK) };
        let pid = unsafe {
            libc::clone(
                holder_main,
                top.cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                std::ptr::null_mut(),
            )
        };
        unsafe {
            libc::close(r);
            if pidfd >= 0 {
                libc::close(pidfd);
            }
        }
        if pid < 0 {
            unsafe { libc::close(w) };
            return false;
        }
        // `w` stays open, unused, until this process exits.
        RUNNING.store(true, Ordering::SeqCst);
        true
    }

    pub fn hand_over(job: super::Job) -> bool {
        if !RUNNING.load(Ordering::SeqCst) || job.dirs.is_empty() {
            return false;
        }
        let c = |p: &std::path::Path| CString::new(p.as_os_str().as_bytes()).ok();
        let Some(dirs) = job.dirs.iter().map(|d| c(d)).collect::<Option<Vec<_>>>() else {
            return false;
        };
        let kill = if job.v2 {
            match c(&job.dirs[0].join("cgroup.kill")) {
                Some(k) => k.into_raw() as *const c_char,
                None => return false,
            }
        } else {
            std::ptr::null()
        };
        let ptrs: Vec<*const c_char> = dirs
            .into_iter()
            .map(|d| d.into_raw() as *const c_char)
            .collect();
        let ndirs = ptrs.len();
        let dirs = Box::leak(ptrs.into_boxed_slice()).as_ptr();
        let raw = Box::leak(Box::new(RawJob { kill, dirs, ndirs }));
        JOB.store(raw, Ordering::SeqCst);
        true
    }

    /// A raw system call: no errno, no libc.
    unsafe fn sys(n: i64, a: i64, b: i64, c: i64) -> i64 {
        let ret;
        std::arch::asm!(
            "syscall",
            inlateout("rax") n => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
        ret
    }

    extern "C" fn holder_main(_: *mut c_void) -> c_int {
        let r = FDS.pipe.load(Ordering::SeqCst) as i64;
        let pidfd = FDS.pidfd.load(Ordering::SeqCst) as i64;
        unsafe {
            // Every copied descriptor but the two we keep, first: the
            // caller's stdio must not stay open here.
            let (lo, hi) = if pidfd >= 0 && pidfd < r {
                (pidfd, r)
            } else if pidfd >= 0 {
                (r, pidfd)
            } else {
                (r, r)
            };
            if lo > 0 {
                sys(libc::SYS_close_range, 0, lo - 1, 0);
            }
            if hi > lo + 1 {
                sys(libc::SYS_close_range, lo + 1, hi - 1, 0);
            }
            sys(libc::SYS_close_range, hi + 1, u32::MAX as i64, 0);
            let name = b"airlock-exit\0";
            sys(
                libc::SYS_prctl,
                libc::PR_SET_NAME as i64,
                name.as_ptr() as i64,
                0,
            );
            let param = libc::sched_param { sched_priority: 0 };
            sys(
                libc::SYS_sched_setscheduler,
                0,
                libc::SCHED_IDLE as i64,
                &param as *const _ as i64,
            );
            let mut byte = 0u8;
            // End-of-file: the launcher has exited. (Interrupted reads are
            // retried; nothing is ever written.)
            while sys(libc::SYS_read, r, &mut byte as *mut u8 as i64, 1) == -(libc::EINTR as i64) {}
            let job = JOB.load(Ordering::SeqCst);
            if !job.is_null() {
                remove(&*job, pidfd);
            }
            sys(libc::SYS_exit, 0, 0, 0);
        }
        0
    }

    /// Waits for the init (its processes leave the cgroup when they exit),
    /// then kills what is left (v2) and removes the directories.
    unsafe fn remove(job: &RawJob, pidfd: i64) {
        if pidfd >= 0 {
            let mut p = libc::pollfd {
                fd: pidfd as c_int,
                events: libc::POLLIN,
                revents: 0,
            };
            // The init exits right after the jail's pid 1, which has
            // already reported; a minute only bounds a wedged kernel.
            while sys(libc::SYS_poll, &mut p as *mut _ as i64, 1, 60_000) == -(libc::EINTR as i64) {
            }
        }
        // (Without a pidfd the removal below retries while they exit.)
        if !job.kill.is_null() {
            let fd = sys(
                libc::SYS_openat,
                libc::AT_FDCWD as i64,
                job.kill as i64,
                (libc::O_WRONLY | libc::O_CLOEXEC) as i64,
            );
            if fd >= 0 {
                sys(libc::SYS_write, fd, b"1".as_ptr() as i64, 1);
                sys(libc::SYS_close, fd, 0, 0);
            }
        }
        for i in 0..job.ndirs {
            let d = *job.dirs.add(i);
            for _ in 0..RMDIR_TRIES {
                let rc = sys(libc::SYS_rmdir, d as i64, 0, 0);
                // Busy: its last processes are still leaving.
                if rc != -(libc::EBUSY as i64) && rc != -(libc::EINTR as i64) {
                    break;
                }
                let ms = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 1_000_000,
                };
                sys(libc::SYS_nanosleep, &ms as *const _ as i64, 0, 0);
            }
        }
    }
}

/// Starts the holder (once per process) for a run whose launcher-side init
/// is `init`; `false` when it cannot run (then the launcher tears its
/// memory down itself, as before, and the cgroup needs another remover).
pub fn start(init: libc::pid_t) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
    return imp::start(init);
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")))]
    {
        let _ = init;
        false
    }
}

/// Leaves `job` to the holder, to be done after this process has exited
/// and the init with it; `false` when no holder runs.
pub fn hand_over(job: Job) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
    return imp::hand_over(job);
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")))]
    {
        let _ = job;
        false
    }
}
