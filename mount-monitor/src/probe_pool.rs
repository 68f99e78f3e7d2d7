//! The threads checks run on: at most a fixed number, started on demand and ended when idle.
//!
//! tokio's blocking pool would do the same job but not keep its size: it hands work to any idle
//! thread, so every thread a slow round started stays busy in turn and none ever idles long
//! enough to end (50 mounts checked every 200 ms kept 27 threads for good). Here the thread that
//! went idle last takes the next check, so the threads beyond what the checks need really idle,
//! and end after [`KEEP_ALIVE`]. The pool also has its own bound, independent of anything else
//! that runs blocking work: a check blocked in the kernel holds its thread until the call
//! returns, and the bound is what such checks may hold at most.
//!
//! No one ever waits for these threads: the process exits with checks still blocked in them.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// How long a thread stays without work before it ends.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool of threads for blocking calls; cheap to clone.
#[derive(Clone)]
pub struct ProbePool {
    inner: Arc<Inner>,
}

struct Inner {
    /// One permit per thread the pool may have; a call holds one from before it is handed to a
    /// thread until that thread is idle again.
    permits: Arc<Semaphore>,
    max_threads: usize,
    keep_alive: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Idle threads, the one idle longest first: work goes to the last one.
    idle: Vec<Idle>,
    threads: usize,
    next_id: u64,
}

struct Idle {
    id: u64,
    handoff: Arc<Handoff>,
}

/// Where a thread waits for its next job. (A channel would do, at 60 KiB of binary.)
#[derive(Default)]
struct Handoff {
    work: Mutex<Option<Work>>,
    given: Condvar,
}

type Work = (Job, OwnedSemaphorePermit);

/// No thread became free before the deadline: every one is held by a call that has not returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {threads} threads are held by checks that have not returned")]
pub struct Busy {
    pub threads: usize,
}

/// The panic that ended a call, as its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(pub String);

impl ProbePool {
    pub fn new(max_threads: usize) -> ProbePool {
        ProbePool::with_keep_alive(max_threads, KEEP_ALIVE)
    }

    pub fn with_keep_alive(max_threads: usize, keep_alive: Duration) -> ProbePool {
        let max_threads = max_threads.max(1);
        ProbePool {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(max_threads)),
                max_threads,
                keep_alive,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Threads alive now, busy or idle.
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        self.inner.lock().threads
    }

    /// Runs `call` on a pool thread, waiting for one to be free until `deadline`. The returned
    /// [`Call`] resolves to its result; dropping it does not stop the call.
    pub async fn run<T, F>(&self, deadline: tokio::time::Instant, call: F) -> Result<Call<T>, Busy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let busy = Busy {
            threads: self.inner.max_threads,
        };
        let permit =
            tokio::time::timeout_at(deadline, Arc::clone(&self.inner.permits).acquire_owned())
                .await
                .map_err(|_| busy)?
                // The semaphore is never closed.
                .map_err(|_| busy)?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(call))
                .map_err(|payload| Panicked(panic_text(payload.as_ref())));
            // The caller may have stopped waiting.
            let _ = tx.send(result);
        });
        self.inner.start(job, permit).map_err(|()| busy)?;
        Ok(Call(rx))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the job to the thread idle last, or to a new thread. The permit guarantees a
    /// thread is idle or may be started; `Err` only if a thread could not be started.
    fn start(self: &Arc<Self>, job: Job, permit: OwnedSemaphorePermit) -> Result<(), ()> {
        let mut state = self.lock();
        if let Some(idle) = state.idle.pop() {
            // Under the state lock: a thread ends only after taking itself off `idle` under it.
            *lock(&idle.handoff.work) = Some((job, permit));
            idle.handoff.given.notify_one();
            return Ok(());
        }
        state.threads += 1;
        state.next_id += 1;
        let id = state.next_id;
        drop(state);
        let inner = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("mount-check".into())
            .spawn(move || inner.work(id, (job, permit)));
        match started {
            Ok(_) => Ok(()),
            Err(e) => {
                self.lock().threads -= 1;
                tracing::error!(error = %e, "cannot start a thread for a check");
                Err(())
            }
        }
    }

    /// A thread's life: run the job, offer itself for the next, end when none comes in time.
    fn work(&self, id: u64, first: Work) {
        let handoff = Arc::new(Handoff::default());
        let mut next = Some(first);
        while let Some((job, permit)) = next.take() {
            job();
            self.lock().idle.push(Idle {
                id,
                handoff: Arc::clone(&handoff),
            });
            // Only now: a caller that got this permit finds this thread idle.
            drop(permit);
            let work = lock(&handoff.work);
            let (mut work, _) = handoff
                .given
                .wait_timeout_while(work, self.keep_alive, |work| work.is_none())
                .unwrap_or_else(|e| e.into_inner());
            next = work.take();
            if next.is_none() {
                drop(work);
                let mut state = self.lock();
                match state.idle.iter().position(|idle| idle.id == id) {
                    Some(at) => {
                        state.idle.remove(at);
                        state.threads -= 1;
                    }
                    // Taken off `idle` just now: the job was handed over under the state lock.
                    None => next = lock(&handoff.work).take(),
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A call running on the pool.
pub struct Call<T>(oneshot::Receiver<Result<T, Panicked>>);

impl<T> Future for Call<T> {
    type Output = Result<T, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|received| {
            // The job always sends, also after a panic; the sender is gone only if it never ran.
            received.unwrap_or_else(|_| Err(Panicked("the check's thread ended".into())))
        })
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn runs_calls_and_reports_panics() {
        let pool = ProbePool::new(1);
        assert_eq!(pool.run(soon(), || 7).await.unwrap().await, Ok(7));
        let crashed = pool
            .run(soon(), || -> u32 { panic!("boom") })
            .await
            .unwrap()
            .await;
        assert_eq!(crashed, Err(Panicked("boom".into())));
        // The thread survived the panic and is reused.
        assert_eq!(pool.run(soon(), || 8).await.unwrap().await, Ok(8));
        assert_eq!(pool.threads(), 1);
    }

    #[tokio::test]
    async fn never_exceeds_its_bound_and_refuses_at_the_deadline() {
        let pool = ProbePool::new(3);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let mut blocked = Vec::new();
        for _ in 0..3 {
            let held = Arc::clone(&held);
            blocked.push(
                pool.run(soon(), move || {
                    let _ = held.lock().unwrap().recv();
                })
                .await
                .unwrap(),
            );
        }
        assert_eq!(pool.threads(), 3);
        let refused = pool
            .run(Instant::now() + Duration::from_millis(50), || ())
            .await
            .err();
        assert_eq!(refused, Some(Busy { threads: 3 }));
        // A call waiting for a thread gets the first one freed.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(soon(), || 9).await.unwrap().await }
        });
        release.send(()).unwrap();
        assert_eq!(waiting.await.unwrap(), Ok(9));
        assert_eq!(pool.threads(), 3);
        for _ in 0..2 {
            release.send(()).unwrap();
        }
        for call in blocked {
            call.await.unwrap();
        }
    }

    #[tokio::test]
    async fn extra_threads_end_once_idle_while_the_rest_keep_working() {
        let pool = ProbePool::with_keep_alive(16, Duration::from_millis(200));
        // A slow round: 16 calls at once, each on its own thread (none returns before all run).
        let all_running = Arc::new(std::sync::Barrier::new(16));
        let mut calls = Vec::new();
        for _ in 0..16 {
            let all_running = Arc::clone(&all_running);
            let slow = move || {
                all_running.wait();
            };
            calls.push(pool.run(soon(), slow).await.unwrap());
        }
        for call in calls {
            call.await.unwrap();
        }
        assert_eq!(pool.threads(), 16);
        // Then one quick call at a time, more often than the keep-alive: one thread is enough,
        // and the others end.
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while pool.threads() > 1 && std::time::Instant::now() < until {
            pool.run(soon(), || ()).await.unwrap().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pool.threads(), 1);
    }
}
