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
