//! Turning one kind of self-wake into an immediate re-poll.
//!
//! hyper's HTTP/1 server (1.x) polls the request's service inside the
//! connection's task, and its body channel wakes the connection's reader
//! whenever the service takes a chunk: the task wakes itself. tokio answers
//! a wake during a poll like a `yield`: the task goes to the back of the
//! run queue and the runtime's other worker is unparked (a `futex` wake and
//! that thread's wake-up and park again), for every request with a body.
//!
//! [`RepollOnSelfWake`] wraps the connection; [`Absorbing`] wraps the
//! service's body reading. A wake of the connection's task raised on this
//! thread while an `Absorbing` future is polled inside it only sets a flag,
//! and the wrapper polls again at once. Every other wake goes to the task's
//! own waker as before: from the I/O driver, other tasks or threads, and
//! hyper's own `yield` after a long busy stretch (a bulk response), which
//! lets the runtime's other worker take the task (absorbing those too cost
//! 10-20 % of bulk throughput).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering::AcqRel, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Not being polled: a wake goes to the task's waker.
const IDLE: u8 = 0;
/// Being polled: a wake is noted, the poller polls again.
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// Immediate re-polls per poll before the runtime is asked to reschedule
/// the task instead, so a future that always wakes itself (an explicit
/// `yield`, an exhausted cooperative budget) still lets others run.
const MAX_REPOLLS: usize = 4;

struct Inner {
    state: AtomicU8,
    /// The task's own waker, as of its last poll.
    task: Mutex<Option<Waker>>,
}

impl Wake for Inner {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The poller sees WOKEN when it tries to go idle, and polls again:
        // nothing is lost between the two. Outside an absorbing section the
        // wake goes to the task even while it is polled (tokio then runs it
        // again later, as without the wrapper).
        if ABSORBING.get() {
            match self.state.compare_exchange(POLLING, WOKEN, AcqRel, Acquire) {
                Ok(_) | Err(WOKEN) => return,
                Err(_) => {}
            }
        }
        // Woken under the lock, without a clone: tokio's wake only queues
        // the task and never calls back into this waker.
        let task = match self.task.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(w) = task.as_ref() {
            w.wake_by_ref();
        }
    }
}

thread_local! {
    /// Set while an [`Absorbing`] future is polled on this thread.
    static ABSORBING: Cell<bool> = const { Cell::new(false) };
}

/// Polls `F` with wakes of an enclosing [`RepollOnSelfWake`] absorbed (see
/// the module documentation).
pub struct Absorbing<F>(pub F);

impl<F: Future + Unpin> Future for Absorbing<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = ABSORBING.replace(true);
        let r = Pin::new(&mut self.0).poll(cx);
        ABSORBING.set(before);
        r
    }
}

/// See the module documentation.
pub struct RepollOnSelfWake<F> {
    inner: F,
    shared: Arc<Inner>,
    waker: Waker,
}

impl<F> RepollOnSelfWake<F> {
    pub fn new(inner: F) -> RepollOnSelfWake<F> {
        let shared = Arc::new(Inner {
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
        });
        RepollOnSelfWake {
            inner,
            waker: Waker::from(shared.clone()),
            shared,
        }
    }
}

impl<F: Future + Unpin> Future for RepollOnSelfWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        {
            let mut task = match this.shared.task.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_REPOLLS {
            this.shared.state.store(POLLING, Release);
            if let Poll::Ready(r) = Pin::new(&mut this.inner).poll(&mut inner_cx) {
                this.shared.state.store(IDLE, Release);
                return Poll::Ready(r);
            }
            if this
                .shared
                .state
                .compare_exchange(POLLING, IDLE, AcqRel, Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
            // Woken while polled: poll again now.
        }
        this.shared.state.store(IDLE, Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

    /// Counts the wakes the outer task gets.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// Wakes itself `n` times (once per poll), then is ready.
    struct SelfWaking {
        left: usize,
        polls: usize,
    }
    impl Future for SelfWaking {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.left == 0 {
                return Poll::Ready(self.polls);
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_wake_during_the_poll_repolls_without_waking_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let outer = Waker::from(count.clone());
        let mut f = RepollOnSelfWake::new(Absorbing(SelfWaking { left: 2, polls: 0 }));
        let r = Pin::new(&mut f).poll(&mut Context::from_waker(&outer));
        assert_eq!(r, Poll::Ready(3));
        assert_eq!(count.0.load(SeqCst), 0);
    }

    /// hyper's own yield (or any wake outside an absorbing section) still
    /// reaches the runtime, which may hand the task to its other worker.
    #[test]
    fn a_wake_outside_an_absorbing_section_goes_to_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let outer = Waker::from(count.clone());
        let mut f = RepollOnSelfWake::new(SelfWaking { left: 1, polls: 0 });
        let r = Pin::new(&mut f).poll(&mut Context::from_waker(&outer));
        assert!(r.is_pending());
        assert_eq!(f.inner.polls, 1);
        assert_eq!(count.0.load(SeqCst), 1);
        assert_eq!(
            Pin::new(&mut f).poll(&mut Context::from_waker(&outer)),
            Poll::Ready(2)
        );
        assert!(!ABSORBING.get());
    }

    #[test]
    fn a_future_that_always_wakes_itself_is_rescheduled_by_the_runtime() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let outer = Waker::from(count.clone());
        let mut f = RepollOnSelfWake::new(Absorbing(SelfWaking {
            left: usize::MAX,
            polls: 0,
        }));
        let r = Pin::new(&mut f).poll(&mut Context::from_waker(&outer));
        assert!(r.is_pending());
        assert_eq!(f.inner.0.polls, MAX_REPOLLS);
        assert_eq!(
            count.0.load(SeqCst),
            1,
            "the task must be woken to run again"
        );
    }

    /// Pending until `go` is set; keeps the last waker it was given.
    struct Gate {
        go: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }
    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.go.load(SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn a_wake_from_outside_reaches_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let outer = Waker::from(count.clone());
        let go = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(Mutex::new(None));
        let mut f = RepollOnSelfWake::new(Gate {
            go: go.clone(),
            waker: slot.clone(),
        });
        assert!(Pin::new(&mut f)
            .poll(&mut Context::from_waker(&outer))
            .is_pending());
        go.store(true, SeqCst);
        slot.lock().unwrap().take().unwrap().wake();
        assert_eq!(count.0.load(SeqCst), 1);
        assert!(Pin::new(&mut f)
            .poll(&mut Context::from_waker(&outer))
            .is_ready());
    }

    /// Wakes raced from another thread against the poll's end are never
    /// lost: each of many rounds completes (a lost wake would hang it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_from_another_thread_are_never_lost() {
        for _ in 0..2000 {
            let go = Arc::new(AtomicBool::new(false));
            let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
            let f = RepollOnSelfWake::new(Gate {
                go: go.clone(),
                waker: slot.clone(),
            });
            let t = std::thread::spawn(move || {
                go.store(true, SeqCst);
                loop {
                    if let Some(w) = slot.lock().unwrap().take() {
                        w.wake();
                        return;
                    }
                    std::thread::yield_now();
                }
            });
            // A liveness bound, not a speed target.
            tokio::time::timeout(std::time::Duration::from_secs(10), f)
                .await
                .expect("a wake was lost");
            t.join().unwrap();
        }
    }
}
