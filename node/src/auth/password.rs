//! Password hashing and checking (DESIGN §9, decision D21): bcrypt is deliberately slow
//! (~50-100 ms at etcd's cost 10), so it runs on the blocking pool behind a semaphore sized
//! to the cores, never on a runtime worker and never while a lock is held. Concurrent
//! Authenticates therefore use every core instead of queueing behind one lock as etcd 3.4's
//! did (its `CheckPassword` ran under the auth store's read-transaction lock).

use atoll_proto::AtollError;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Hashes and checks passwords, at most one per core at a time.
#[derive(Clone)]
pub struct PasswordPool {
    permits: Arc<Semaphore>,
    cost: u32,
}

impl PasswordPool {
    /// A pool making hashes of `cost`, running as many bcrypt computations at once as the
    /// machine has cores.
    pub fn new(cost: u32) -> PasswordPool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordPool { permits: Arc::new(Semaphore::new(cores)), cost }
    }

    /// The bcrypt hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, AtollError> {
        let cost = self.cost;
        self.run(move || {
            bcrypt::hash(password, cost).map_err(|e| AtollError::Malformed {
                reason: format!("cannot hash the password: {e}"),
            })
        })
        .await
    }

    /// Whether `password` matches `hash`; a malformed hash matches nothing.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, AtollError> {
        self.run(move || Ok(bcrypt::verify(password, &hash).unwrap_or(false))).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AtollError> + Send + 'static,
    ) -> Result<T, AtollError> {
        let _permit = self.permits.acquire().await.map_err(|_| AtollError::Stopping)?;
        tokio::task::spawn_blocking(work).await.map_err(|_| AtollError::Stopping)?
    }
}
