//! Authentication work that costs CPU time (a PBKDF2 or Argon2 check of a stored
//! ticket, a salted WAMP-CRA key derived from an authenticator's answer) runs on
//! tokio's blocking threads, at most [`AuthWork::new`]'s bound at once, so a flood of
//! AUTHENTICATE messages neither stalls the async workers that route messages nor
//! starts unbounded threads: the excess waits for a permit (each waiting handshake
//! holds a seat and ends at the handshake timeout).

use std::sync::Arc;

use tokio::sync::Semaphore;

/// The bound on concurrent authentication checks of one node.
pub struct AuthWork(Arc<Semaphore>);

impl AuthWork {
    /// At most `concurrency` checks at once (at least one).
    pub fn new(concurrency: usize) -> Self {
        AuthWork(Arc::new(Semaphore::new(concurrency.max(1))))
    }

    /// One check per core, at least two.
    pub fn per_core() -> Self {
        AuthWork::new(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
    }

    /// Runs `check` off the async workers once a permit is free; `None` if it panicked.
    pub async fn run<T: Send + 'static>(&self, check: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let _permit = self.0.acquire().await.ok()?;
        tokio::task::spawn_blocking(check).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn checks_run_off_the_async_workers_within_the_bound() {
        let work = Arc::new(AuthWork::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (work, running, most) = (work.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                work.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Some(()));
        }
        // on a single-threaded runtime, two at once means they ran on other threads
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at once, never more");
    }
}
