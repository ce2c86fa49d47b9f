//! Client histories: what each client asked, when (a logical sequence number shared by every
//! invocation and response, so real-time order is exact), and what it was told.

/// A client operation on one key. Values are unique per write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Put(u64),
    Get,
    Delete,
    /// Txn: if value == expect then put new else get.
    Cas {
        expect: u64,
        new: u64,
    },
}

/// What the client was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not answered yet.
    Pending,
    /// Timed out or its node crashed: it may or may not have taken effect.
    Unknown,
    /// Refused or replaced before taking effect (NotLeader, LeaderChanged, ...).
    Failed,
    Put,
    Get(Option<u64>),
    Delete {
        deleted: bool,
    },
    Cas {
        ok: bool,
        read: Option<u64>,
    },
}

#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub key: usize,
    pub shard: u64,
    pub kind: OpKind,
    pub invoke: u64,
    pub response: Option<u64>,
    pub outcome: Outcome,
    /// The response header's revision, for answered operations.
    pub revision: Option<i64>,
    /// Whether the answered operation changed the store (so it got a new revision).
    pub changed: bool,
}

#[derive(Default)]
pub struct History {
    pub ops: Vec<Op>,
    seq: u64,
}

impl History {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn invoke(&mut self, client: usize, key: usize, shard: u64, kind: OpKind) -> usize {
        let invoke = self.next_seq();
        self.ops.push(Op {
            client,
            key,
            shard,
            kind,
            invoke,
            response: None,
            outcome: Outcome::Pending,
            revision: None,
            changed: false,
        });
        self.ops.len() - 1
    }

    pub fn complete(&mut self, op: usize, outcome: Outcome, revision: Option<i64>) {
        let response = self.next_seq();
        let Some(o) = self.ops.get_mut(op) else { return };
        if o.outcome != Outcome::Pending {
            return;
        }
        o.changed = match outcome {
            Outcome::Put => true,
            Outcome::Delete { deleted } => deleted,
            Outcome::Cas { ok, .. } => ok,
            _ => false,
        };
        if outcome != Outcome::Unknown {
            o.response = Some(response);
            o.revision = revision;
        }
        o.outcome = outcome;
    }
}
