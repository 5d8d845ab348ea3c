//! `airlock run`'s jail init, forked before `main`: from an ELF initialiser
//! (`.init_array`), which glibc calls with `argc`, `argv` and `envp` once
//! the binary is relocated, before std's runtime start and `main` (they
//! took ~0.4 ms on the init's critical path: std reads `/proc/self/maps`
//! for the main thread's stack guard). The init builds the network
//! namespace while this process starts its runtime and parses.
//!
//! std is not started there, so this does first what std's start does
//! before anything can depend on it: descriptors 0-2 that are closed are
//! opened on `/dev/null` (otherwise the init's pipes would take their
//! numbers, and std would then leave them as stdio), and SIGPIPE is
//! ignored (the jail's command gets it back at its default, as before).
//! std repeats both later and finds them done. Everything else it sets up
//! (the stack-overflow handler, the main thread's name) the init never
//! needed: it runs as std's runtime had left it except for those.

use std::sync::Mutex;

static ZYGOTE: Mutex<Option<airlock_jail::Zygote>> = Mutex::new(None);

/// The init forked before `main`, if any.
pub fn take_zygote() -> Option<airlock_jail::Zygote> {
    ZYGOTE.lock().ok()?.take()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod ctor {
    use std::ffi::{c_char, c_int, CStr};

    type Init = extern "C" fn(c_int, *const *const c_char, *const *const c_char);

    // Unprioritised `.init_array` entries run after the prioritised ones
    // (std's own argument capture among them) and after every library's
    // initialisers; the binary has no other unprioritised entry.
    #[used]
    #[link_section = ".init_array"]
    static FORK_INIT: Init = fork_init;

    extern "C" fn fork_init(argc: c_int, argv: *const *const c_char, _: *const *const c_char) {
        // Only `airlock run …`: every other command line starts as usual.
        if argc < 2 || argv.is_null() {
            return;
        }
        let first = unsafe { *argv.add(1) };
        if first.is_null() || unsafe { CStr::from_ptr(first) }.to_bytes() != b"run" {
            return;
        }
        if !std_like_start() {
            // Leave it to std (which aborts) and to `main`'s fallback.
            return;
        }
        if let Ok(z) = airlock_jail::Zygote::fork() {
            if let Ok(mut slot) = super::ZYGOTE.lock() {
                *slot = Some(z);
            }
        }
    }

    /// What std's runtime start does first, here before any descriptor is
    /// made: closed stdio descriptors are opened on `/dev/null`, SIGPIPE is
    /// ignored. `false` when a descriptor cannot be made valid.
    fn std_like_start() -> bool {
        for fd in 0..3 {
            let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
            if closed {
                let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
                if null != fd {
                    return false;
                }
            }
        }
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        true
    }
}

/// Takes the address space's teardown off `airlock run`'s exit. The exit
/// of the process whose last thread drops the memory unmaps it all (page
/// tables, the pages the binary's relocation copied, the heap, the thread
/// stacks) before its parent is told: 0.5-0.7 ms here in scheduler traces
/// between the launcher's last thread's exit and the caller's `wait`
/// returning, against ~0.25 ms for bwrap. This process shares the memory
/// (`CLONE_VM`, not a thread: it has its own descriptors and signal
/// state), so the launcher's exit only drops a reference; it waits on a
/// pipe whose write end only the launcher holds, and exits at idle
/// priority once that closes (the launcher has exited, however it ended),
/// doing the teardown then, after the caller has its status. `airlock run`
/// starts it once the jail runs (started in the initialiser beside the
/// init, it slowed the jail's start: +0.6 ms in interleaved runs).
///
/// It runs no Rust or libc code: it shares the launcher's thread-local
/// storage (errno) and heap, so it makes raw system calls only, on a stack
/// of its own. It holds no descriptor but its pipe's read end, and it adds
/// no reader of the launcher's memory: it is the launcher's uid, with the
/// launcher's memory, and it runs no code but this.
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
pub(crate) mod holder {
    use std::ffi::{c_int, c_void};
    use std::sync::atomic::{AtomicBool, Ordering};

    const STACK: usize = 16 * 1024;

    #[repr(C, align(16))]
    struct Stack(std::cell::UnsafeCell<[u8; STACK]>);
    // Only the one holder process ever touches it.
    unsafe impl Sync for Stack {}
    static HOLDER_STACK: Stack = Stack(std::cell::UnsafeCell::new([0; STACK]));
    static STARTED: AtomicBool = AtomicBool::new(false);

    /// Starts the holder (once per process); without it the launcher just
    /// tears its memory down itself, as before.
    pub fn start() {
        if STARTED.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut fds = [0; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        let [r, w] = fds;
        let top = unsafe { (HOLDER_STACK.0.get() as *mut u8).add(STACK) };
        let pid = unsafe {
            libc::clone(
                holder_main,
                top.cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                r as isize as *mut c_void,
            )
        };
        unsafe { libc::close(r) };
        if pid < 0 {
            unsafe { libc::close(w) };
        }
        // On success `w` stays open, unused, until this process exits.
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

    extern "C" fn holder_main(arg: *mut c_void) -> c_int {
        let r = arg as i64;
        unsafe {
            // Every copied descriptor but the pipe's read end, first: the
            // caller's stdio must not stay open here.
            if r > 0 {
                sys(libc::SYS_close_range, 0, r - 1, 0);
            }
            sys(libc::SYS_close_range, r + 1, u32::MAX as i64, 0);
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
            sys(libc::SYS_exit, 0, 0, 0);
        }
        0
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")))]
pub(crate) mod holder {
    pub fn start() {}
}
