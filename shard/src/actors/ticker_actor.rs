//! The ticker of one arbiter: one timer that ticks every replica on its arbiter in one pass
//! (DESIGN §3: "one ticker per arbiter, not one timer per replica"), skipping the replicas that
//! hibernate (decision D14). A thousand replicas thus cost one timer wake-up per tick and a
//! flag read each, and nothing more while their shards hibernate.

use super::messages::{PublishedState, Tick};
use super::replica_actor::ReplicaActor;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A replica the ticker ticks, and the flag through which it says it hibernates.
pub struct TickedReplica {
    /// The replica, on the ticker's arbiter.
    pub addr: Addr<ReplicaActor>,
    /// What the replica publishes, its hibernation among it.
    pub published: Arc<PublishedState>,
}

/// Ticks the replicas of one arbiter; start it on that arbiter.
pub struct TickerActor {
    tick_interval: Duration,
    replicas: Vec<TickedReplica>,
    /// Ticks not delivered because a replica's mailbox was full.
    ticks_skipped: u64,
}

impl TickerActor {
    /// A ticker of `replicas` every `tick_interval` (the replicas' configured tick).
    pub fn new(tick_interval: Duration, replicas: Vec<TickedReplica>) -> TickerActor {
        TickerActor { tick_interval, replicas, ticks_skipped: 0 }
    }

    /// Sends one tick to every replica that does not hibernate. A replica whose mailbox is
    /// full (`REPLICA_MAILBOX_MAX`) misses this tick: it is busy with messages, each of
    /// which wakes it anyway, and a late tick only delays its timers, never its safety.
    fn tick_all(&mut self) {
        for replica in &self.replicas {
            if replica.published.is_hibernating() {
                continue;
            }
            if replica.addr.try_send(Tick).is_err() {
                self.ticks_skipped += 1;
                tracing::debug!(
                    ticks_skipped = self.ticks_skipped,
                    "replica mailbox full; tick skipped"
                );
            }
        }
    }
}

impl Actor for TickerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.tick_interval, |act, _| act.tick_all());
    }
}

/// Adds replicas started after the ticker (a node starts its data shards once the meta
/// shard has given it the shard map, decision D23).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddTickedReplicas(pub Vec<TickedReplica>);

impl Handler<AddTickedReplicas> for TickerActor {
    type Result = ();

    fn handle(&mut self, msg: AddTickedReplicas, _: &mut Context<Self>) {
        self.replicas.extend(msg.0);
    }
}
