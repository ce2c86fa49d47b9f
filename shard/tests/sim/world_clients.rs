//! Clients in the simulated world: issuing operations and taking their answers.

use crate::client::{Request, value_of, write_op, write_outcome};
use crate::history::{OpKind, Outcome};
use crate::linearizability::OPS_PER_KEY_MAX;
use crate::node::Completion;
use crate::world::World;
use atoll_proto::AtollError;

impl World {
    /// Idle clients whose think time is over send their next operation (chaos phase only).
    pub fn issue_requests(&mut self) {
        if self.now >= self.params.chaos_ms {
            return;
        }
        for c in 0..self.clients.len() {
            if !self.clients[c].busy && self.clients[c].next_at <= self.now {
                self.issue(c);
            }
        }
    }

    fn issue(&mut self, c: usize) {
        let key = self.rng.below(self.keys.len() as u64) as usize;
        let on_key = self.history.ops.iter().filter(|o| o.key == key).count();
        let up: Vec<u64> = self.nodes.iter().filter(|n| n.is_up()).map(|n| n.id).collect();
        if on_key + 1 >= OPS_PER_KEY_MAX || up.is_empty() {
            self.clients[c].next_at = self.now + 10;
            return;
        }
        let shard = self.keys[key].1;
        let kind = match self.rng.below(100) {
            0..35 => OpKind::Put(self.fresh_value()),
            35..65 => OpKind::Get,
            65..80 => OpKind::Delete,
            _ => {
                let expect = match self.clients[c].last_value.get(&key) {
                    Some(v) if self.rng.chance(800) => *v,
                    _ => self.rng.between(1, self.next_value),
                };
                OpKind::Cas { expect, new: self.fresh_value() }
            }
        };
        let guess = self.clients[c].leader_guess.get(&shard).copied();
        let node = match guess {
            Some(n) if kind != OpKind::Get && up.contains(&n) => n,
            _ => *self.rng.pick(&up).unwrap_or(&1),
        };
        self.send(c, key, kind, node);
    }

    /// Client `c` sends `kind` on key `key` to node `node`; returns the request ID.
    pub fn send(&mut self, c: usize, key: usize, kind: OpKind, node: u64) -> u64 {
        let shard = self.keys[key].1;
        let op = self.history.invoke(c, key, shard.0, kind);
        let req = self.next_req;
        self.next_req += 1;
        let deadline = self.now + self.params.timeout_ms;
        self.requests.insert(req, Request { client: c, op, node, key, shard, kind, deadline });
        self.clients[c].busy = true;
        self.stats.ops += 1;
        let target = &mut self.nodes[node as usize - 1];
        match kind {
            OpKind::Get => target.read_index(shard, req),
            _ => target.propose(shard, write_op(kind, &self.keys[key].0), req),
        }
        req
    }

    pub fn fresh_value(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value
    }

    /// An answer from node `i`; answers to requests the client gave up on are ignored.
    pub fn on_completion(&mut self, i: usize, done: Completion) -> Result<(), String> {
        let (req, answer) = match done {
            Completion::Write(req, answer) => (req, Some(answer)),
            Completion::Read(req, Ok(_)) => (req, None),
            Completion::Read(req, Err(e)) => (req, Some(Err(e))),
        };
        let Some(r) = self.requests.remove(&req) else { return Ok(()) };
        let (outcome, revision) = match answer {
            Some(answer) => {
                if let Err(AtollError::NotLeader { leader_hint: Some(hint), .. }) = &answer {
                    self.clients[r.client].leader_guess.insert(r.shard, hint.0);
                }
                if r.kind == OpKind::Get {
                    (Outcome::Failed, None)
                } else {
                    write_outcome(r.kind, answer)?
                }
            }
            None => {
                // The read index is applied here: read the local store now, as the node's
                // request service does with a fresh snapshot.
                let resp = self.nodes[i].range(r.shard, &self.keys[r.key].0)?;
                let value = resp.kvs.first().and_then(|kv| value_of(&kv.value));
                (Outcome::Get(value), Some(resp.header.revision))
            }
        };
        match outcome {
            Outcome::Failed => self.stats.failed += 1,
            _ => {
                self.stats.ok += 1;
                if r.kind != OpKind::Get {
                    self.clients[r.client].leader_guess.insert(r.shard, self.nodes[i].id);
                }
            }
        }
        let seen = match (r.kind, outcome) {
            (OpKind::Put(v), Outcome::Put)
            | (OpKind::Cas { new: v, .. }, Outcome::Cas { ok: true, .. }) => Some(v),
            (_, Outcome::Get(v) | Outcome::Cas { read: v, .. }) => v,
            _ => None,
        };
        if let Some(v) = seen {
            self.clients[r.client].last_value.insert(r.key, v);
        }
        self.history.complete(r.op, outcome, revision);
        let client = &mut self.clients[r.client];
        client.busy = false;
        client.next_at = self.now + self.rng.below(self.params.think_ms_max + 1);
        Ok(())
    }
}
