//! Closed-loop put loops that run until some other work finishes, for scenarios that measure
//! what that work costs ordinary writes (a physical compaction, a lease storm).

use super::emit::quantile;
use crate::connect::ClientPool;
use crate::keys::KeySpace;
use anyhow::{anyhow, bail};
use atoll_proto::kv::PutRequest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Put latencies of one phase.
#[derive(Default)]
pub struct Puts {
    /// Latency of each successful put, µs.
    pub latencies_us: Vec<u64>,
    /// Length of the phase.
    pub elapsed: Duration,
    /// Failed puts.
    pub errors: u64,
}

impl Puts {
    /// The `q` quantile of the latencies, µs (nearest rank).
    pub fn percentile(&self, q: f64) -> f64 {
        let samples: Vec<f64> = self.latencies_us.iter().map(|us| *us as f64).collect();
        quantile(&samples, q)
    }

    /// Successful puts per second of the phase.
    pub fn ops_per_s(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `writers` closed-loop put loops, each writing the keys of `keys` in turn, until
/// `until` finishes (at least one put each); fails if no put succeeded.
pub async fn put_loops(
    pool: &ClientPool,
    writers: u64,
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
    until: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Puts> {
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let loops: Vec<_> = (0..writers as usize)
        .map(|i| {
            let client = pool.client(i).clone();
            let (keys, value, stop) = (keys.clone(), Arc::clone(value), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut mine = Puts::default();
                let mut n = i as u64;
                loop {
                    let key = keys.key(n % keys.size());
                    let req = PutRequest { key, value: value.to_vec(), ..Default::default() };
                    let sent = Instant::now();
                    match client.put(req).await {
                        Ok(_) => mine.latencies_us.push(sent.elapsed().as_micros() as u64),
                        Err(_) => mine.errors += 1,
                    }
                    n += writers;
                    if stop.load(Ordering::Relaxed) {
                        return mine;
                    }
                }
            })
        })
        .collect();
    let ended = until.await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Puts { elapsed: began.elapsed(), ..Puts::default() };
    for handle in loops {
        let mine = handle.await.map_err(|e| anyhow!("a put loop failed: {e}"))?;
        all.latencies_us.extend(mine.latencies_us);
        all.errors += mine.errors;
    }
    all.elapsed = began.elapsed().max(all.elapsed);
    ended?;
    if all.latencies_us.is_empty() {
        bail!("a put phase completed no put ({} errors)", all.errors);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_rates_per_second() {
        let puts = Puts {
            latencies_us: (1..=200).rev().collect(),
            elapsed: Duration::from_secs(2),
            errors: 0,
        };
        assert_eq!(puts.percentile(0.5), 100.0);
        assert_eq!(puts.percentile(0.99), 198.0);
        assert_eq!(puts.percentile(1.0), 200.0);
        assert_eq!(puts.ops_per_s(), 100.0);
        assert_eq!(Puts::default().percentile(0.99), 0.0);
    }
}
