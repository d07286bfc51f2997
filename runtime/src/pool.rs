//! A persistent pool of worker threads (std): created once with a session, it runs one job at a
//! time on every thread and returns when all are done. Nothing is allocated per job.
//!
//! Between jobs a worker spins (up to [`SPIN`]) before it sleeps on a condition variable:
//! the ops of one inference follow each other within microseconds, and waking a sleeping
//! thread costs tens of microseconds on a virtual machine, as much as a whole small layer.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// How long an idle worker spins before sleeping.
pub const SPIN: Duration = Duration::from_millis(2);

/// A job as the workers see it: a borrowed closure with its lifetime erased. `run` keeps the
/// closure alive until every worker has finished with it.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync));

struct Shared {
    /// Written by `run` before `generation` is bumped (Release), read by workers after they see
    /// the bump (Acquire); never written while a job is pending.
    job: UnsafeCell<Option<Job>>,
    generation: AtomicU64,
    /// Workers still running the current job.
    pending: AtomicUsize,
    shutdown: AtomicBool,
    /// Workers that have started (their start-up allocations are done).
    started: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is only written by `run` while no worker reads it (between jobs, with
// `pending == 0`), and published through `generation` with Release/Acquire ordering; the
// pointee is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool running jobs on `threads` threads: the caller's and `threads - 1` workers.
    pub fn new(threads: usize) -> std::io::Result<ThreadPool> {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            started: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = ThreadPool { shared, workers: Vec::new() };
        for index in 1..threads.max(1) {
            let s = pool.shared.clone();
            let handle = std::thread::Builder::new()
                .name(std::format!("sparq-worker-{index}"))
                .spawn(move || worker(&s, index))?;
            pool.workers.push(handle);
        }
        // Return once every worker runs, so that no thread start-up work (allocations included)
        // falls into a later `run`.
        while pool.shared.started.load(Ordering::Acquire) < pool.workers.len() {
            std::thread::yield_now();
        }
        Ok(pool)
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Run `f(i)` for every `i` in `0..threads()`, concurrently; `f(0)` on the calling thread.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            f(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY (lifetime erasure): `WaitForWorkers` below does not let this function return
        // (or unwind) before `pending` is back to zero, i.e. before every worker has finished
        // calling the job, so the borrow outlives every use of the erased pointer.
        let job = Job(unsafe {
            core::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync + 'static)>(f)
        });
        // SAFETY: no job is pending (the previous `run` waited for all workers), so no worker
        // reads `job` now.
        unsafe { *s.job.get() = Some(job) };
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Release);
        {
            let _guard = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let _wait = WaitForWorkers(s);
        f(0);
    }
}

struct WaitForWorkers<'a>(&'a Shared);

impl Drop for WaitForWorkers<'_> {
    fn drop(&mut self) {
        while self.0.pending.load(Ordering::Acquire) > 0 {
            core::hint::spin_loop();
        }
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0u64;
    s.started.fetch_add(1, Ordering::Release);
    loop {
        // Wait for the next job: spin a while, then sleep.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            if s.generation.load(Ordering::Acquire) != seen {
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(1024) || start.elapsed() < SPIN {
                core::hint::spin_loop();
                continue;
            }
            let guard = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            if s.generation.load(Ordering::Acquire) == seen && !s.shutdown.load(Ordering::Acquire) {
                drop(s.wake.wait(guard).unwrap_or_else(|e| e.into_inner()));
            }
        }
        seen = s.generation.load(Ordering::Acquire);
        // SAFETY: the Acquire load above synchronizes with `run`'s Release bump, after which
        // `job` is not written until this worker decrements `pending`.
        if let Some(Job(f)) = unsafe { *s.job.get() } {
            // SAFETY: `run` keeps the closure alive until `pending` reaches zero (below). A
            // panicking job still counts as finished, so `run` never waits forever.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*f)(index) }));
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _guard = self.shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
