//! The replica core asserted by the effects it emits, without actors, threads or a log writer.

use super::*;
use crate::config::ReplicaConfig;
use crate::mvcc::{MvccStore, ShardRange};
use crate::storage::Storage;
use atoll_proto::{AtollError, PutRequest, ShardId, WriteOp};
use std::sync::Arc;

const SHARD: ShardId = ShardId(4);

fn must_core(storage: &Storage, voters: &[u64]) -> ReplicaCore<u32, u32> {
    let store = MvccStore::new(storage.clone(), SHARD, ShardRange::all());
    let deps = ReplicaCoreDeps {
        shard: SHARD,
        config: ReplicaConfig { node_id: 1, ..ReplicaConfig::default() },
        initial_voters: voters,
        initial_members: &[],
        initial_shard_map: None,
        store: &store,
        clock: Arc::new(SystemClock),
    };
    ReplicaCore::new(deps).expect("core").0
}

fn put() -> WriteOp {
    WriteOp::Put(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() })
}

#[test]
fn a_sole_voter_commits_only_what_is_durable_and_applies_only_what_is_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), 1 << 20).expect("open");
    let mut core = must_core(&storage, &[1]);
    core.start();
    assert!(!core.is_leader(), "no voter before the bootstrap entry is applied");
    core.drive_ready();
    let effects = core.take_effects();
    let [Effect::Apply { entries, proposals, conf_changes }] = effects.as_slice() else {
        panic!("the bootstrap entry goes to apply")
    };
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1]);
    assert!(proposals.is_empty());
    let [ConfChangeOutcome { index: 1, result: Ok((conf, _)) }] = conf_changes.as_slice() else {
        panic!("the bootstrap conf change is accepted")
    };
    assert_eq!(conf.voters, vec![1]);
    core.on_applied(crate::mvcc::ApplyState { applied_index: 1, ..Default::default() });
    assert!(core.wants_ready() && core.is_leader(), "a sole voter leads once it is one");
    core.drive_ready();
    let effects = core.take_effects();
    let [Effect::Persist(write)] = effects.as_slice() else { panic!("one log write") };
    let indices: Vec<u64> = write.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, vec![2], "the new leader's empty entry");
    assert_eq!(write.hard_state.as_ref().map(|hs| (hs.term, hs.vote)), Some((2, 1)));
    let LogWriteDone::Ready { number, last_index, .. } = write.done else { panic!("ready") };
    assert_eq!(last_index, 2);

    core.propose(put(), 7);
    core.drive_ready();
    let effects = core.take_effects();
    // The proposal is written; nothing is applied before the first write is durable.
    let [Effect::Persist(second)] = effects.as_slice() else { panic!("one log write") };
    assert_eq!(second.entries.len(), 1);
    let LogWriteDone::Ready { number: second_number, .. } = second.done else { panic!() };

    core.on_persisted(number, 2, Vec::new());
    core.drive_ready();
    let effects = core.take_effects();
    let [Effect::Apply { entries, proposals, .. }, Effect::Persist(commit)] = effects.as_slice()
    else {
        panic!("entry 2 is applied and the new commit index written")
    };
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2]);
    assert!(proposals.is_empty(), "the proposal's entry is not committed yet");
    assert!(commit.entries.is_empty());
    assert_eq!(commit.hard_state.as_ref().map(|hs| hs.commit), Some(2));
    let LogWriteDone::Ready { number: third_number, .. } = commit.done else { panic!() };

    core.on_persisted(second_number, 3, Vec::new());
    core.on_persisted(third_number, 0, Vec::new());
    core.drive_ready();
    let effects = core.take_effects();
    let Some(Effect::Apply { entries, proposals, .. }) = effects.first() else { panic!("apply") };
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3]);
    assert_eq!(proposals.iter().map(|p| (p.index, p.reply)).collect::<Vec<_>>(), vec![(3, 7)]);
}

#[test]
fn a_replica_without_a_leader_refuses_writes_and_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), 1 << 20).expect("open");
    let mut core = must_core(&storage, &[1, 2, 3]);
    core.start();
    assert!(!core.is_leader(), "one of three voters waits for an election");
    core.propose(put(), 1);
    core.read_index(2);
    let effects = core.take_effects();
    assert!(matches!(
        effects.as_slice(),
        [
            Effect::WriteFailed(1, AtollError::NoLeader { shard: SHARD }),
            Effect::ReadDone(2, Err(AtollError::NoLeader { shard: SHARD })),
        ]
    ));
}
