//! Where Argon2 runs: a few dedicated threads at a lower CPU priority, never an async worker.
//!
//! A verification costs tens of milliseconds of CPU by design. On tokio's blocking pool a
//! flood of bad logins would compete with the lookups for every core; here at most
//! `threads` verify at once (callers wait for a `turn`), and those threads run at nice 10,
//! so the scheduler gives the lookups' workers the CPU first whenever both want it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The nice value of the verifying threads (0 is normal, 19 the lowest priority).
const NICENESS: i32 = 10;

/// The verifying threads.
pub struct Verifier {
    jobs: mpsc::Sender<Job>,
    turns: Arc<Semaphore>,
}

impl Verifier {
    /// Half the cores (at least one): the other half stays for the lookups.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism()
            .map(|n| (n.get() / 2).max(1))
            .unwrap_or(1)
    }

    /// Starts `threads` verifying threads; they end when the `Verifier` is dropped.
    pub fn new(threads: usize) -> Verifier {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking job loses its answer, not the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-verifying thread");
            }
        }
        Verifier {
            jobs,
            turns: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Waits until one of the threads is free for this caller.
    pub async fn turn(&self) -> OwnedSemaphorePermit {
        self.turns
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Runs `work` on a verifying thread.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            // No thread could be started: do the work here rather than never.
            job();
        }
        rx.await.expect("a verifying thread answers every job")
    }

    /// Whether `password` matches the Argon2 `hash`.
    pub async fn verify(&self, hash: String, password: String) -> bool {
        self.run(move || super::verify_password(&hash, &password))
            .await
    }
}

/// Lowers the calling thread's CPU priority (Linux: `setpriority` on a thread id 0 changes
/// only the calling thread). Elsewhere, nothing.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" {
            fn setpriority(
                which: std::ffi::c_int,
                who: std::ffi::c_uint,
                prio: std::ffi::c_int,
            ) -> std::ffi::c_int;
        }
        const PRIO_PROCESS: std::ffi::c_int = 0;
        // SAFETY: setpriority takes plain integers and changes only the scheduling priority
        // of the calling thread; it touches no memory.
        let rc = unsafe { setpriority(PRIO_PROCESS, 0, NICENESS) };
        if rc != 0 {
            tracing::debug!("cannot lower the priority of a password-verifying thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_verifying_threads_one_turn_each() {
        let verifier = Verifier::new(1);
        let name = verifier
            .run(|| std::thread::current().name().map(str::to_owned))
            .await;
        assert_eq!(name.as_deref(), Some("argon2-0"));
        let first = verifier.turn().await;
        let second = tokio::time::timeout(std::time::Duration::from_millis(50), verifier.turn());
        assert!(second.await.is_err(), "one thread: one turn at a time");
        drop(first);
        let _again = verifier.turn().await;
        let hash = crate::operators::hash_password("a long passphrase");
        assert!(
            verifier
                .verify(hash.clone(), "a long passphrase".into())
                .await
        );
        assert!(!verifier.verify(hash, "another one!".into()).await);
    }
}
