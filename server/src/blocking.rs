//! Work too heavy for an HTTP worker: reading a large body the caller was
//! allowed to send (a megabyte of JSON, CBOR or Automerge) takes tens of
//! milliseconds, and every other request that worker serves would wait for
//! it. Such work runs on the blocking pool; small work, which costs less
//! than the hand-over, stays where it is.

/// Bodies at least this long are read off the worker.
pub const OFF_WORKER_FROM: usize = 64 * 1024;

/// Runs `work` on the blocking pool when `len` (the bytes it reads) is at
/// least [`OFF_WORKER_FROM`], else at once. `None` if it panicked there
/// (the panic is logged by the pool's hook; the caller answers an error).
pub async fn read_large<T, F>(len: usize, work: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if len < OFF_WORKER_FROM {
        Some(work())
    } else {
        tokio::task::spawn_blocking(work).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_work_runs_off_the_calling_thread_and_small_work_on_it() {
        let here = std::thread::current().id();
        let small = read_large(10, move || std::thread::current().id()).await;
        assert_eq!(small, Some(here));
        let large = read_large(OFF_WORKER_FROM, move || std::thread::current().id()).await;
        assert!(large.is_some_and(|id| id != here));
    }
}
