//! Conversion between raft-rs protobuf messages and their serde wire form in
//! `atoll_proto::peer`.
//!
//! Bytes from the network are only ever decoded as serde types; this module builds the
//! protobuf structs field by field, so no protobuf decoder sees network input (DESIGN §8,
//! rust-protobuf 2's recursion advisory).

use atoll_proto::peer::{
    RaftConfState, RaftEntry, RaftEntryType, RaftMessage, RaftMessageType, RaftSnapshot,
    RaftSnapshotMetadata,
};
use atoll_proto::{LogIndex, Term};
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType, Snapshot};

/// Why a wire message cannot become a raft-rs message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerCodecError {
    /// A message type that only a node's own Raft group creates locally arrived from a peer.
    #[error("raft message type {msg_type:?} is local to a node and is never sent to a peer")]
    LocalMessageType {
        /// The type received.
        msg_type: RaftMessageType,
    },
}

/// The wire form of a raft-rs message.
pub fn to_wire(m: &Message) -> RaftMessage {
    RaftMessage {
        msg_type: msg_type_to_wire(m.get_msg_type()),
        to: m.to,
        from: m.from,
        term: Term(m.term),
        log_term: Term(m.log_term),
        index: LogIndex(m.index),
        entries: m.get_entries().iter().map(entry_to_wire).collect(),
        commit: LogIndex(m.commit),
        commit_term: Term(m.commit_term),
        snapshot: m.snapshot.as_ref().map(snapshot_to_wire),
        request_snapshot: LogIndex(m.request_snapshot),
        reject: m.reject,
        reject_hint: LogIndex(m.reject_hint),
        context: m.get_context().to_vec(),
        deprecated_priority: m.deprecated_priority,
        priority: m.priority,
    }
}

/// The raft-rs message of a wire message received from a peer. Refuses the message types
/// raft-rs only creates locally (`MsgHup`, `MsgBeat`, `MsgUnreachable`, `MsgSnapStatus`,
/// `MsgCheckQuorum`): a peer sending one is broken or hostile, and raft-rs would act on it
/// as if this node had decided it.
pub fn from_wire(w: RaftMessage) -> Result<Message, PeerCodecError> {
    if is_local(w.msg_type) {
        return Err(PeerCodecError::LocalMessageType { msg_type: w.msg_type });
    }
    Ok(from_wire_unchecked(w))
}

fn is_local(t: RaftMessageType) -> bool {
    matches!(
        t,
        RaftMessageType::Hup
            | RaftMessageType::Beat
            | RaftMessageType::Unreachable
            | RaftMessageType::SnapStatus
            | RaftMessageType::CheckQuorum
    )
}

fn from_wire_unchecked(w: RaftMessage) -> Message {
    let mut m = Message::default();
    m.set_msg_type(msg_type_from_wire(w.msg_type));
    m.to = w.to;
    m.from = w.from;
    m.term = w.term.0;
    m.log_term = w.log_term.0;
    m.index = w.index.0;
    m.set_entries(w.entries.into_iter().map(entry_from_wire).collect());
    m.commit = w.commit.0;
    m.commit_term = w.commit_term.0;
    if let Some(snapshot) = w.snapshot {
        m.set_snapshot(snapshot_from_wire(snapshot));
    }
    m.request_snapshot = w.request_snapshot.0;
    m.reject = w.reject;
    m.reject_hint = w.reject_hint.0;
    m.set_context(w.context.into());
    m.deprecated_priority = w.deprecated_priority;
    m.priority = w.priority;
    m
}

fn entry_to_wire(e: &Entry) -> RaftEntry {
    RaftEntry {
        entry_type: match e.get_entry_type() {
            EntryType::EntryNormal => RaftEntryType::Normal,
            EntryType::EntryConfChange => RaftEntryType::ConfChange,
            EntryType::EntryConfChangeV2 => RaftEntryType::ConfChangeV2,
        },
        term: Term(e.term),
        index: LogIndex(e.index),
        data: e.get_data().to_vec(),
        context: e.get_context().to_vec(),
    }
}

fn entry_from_wire(w: RaftEntry) -> Entry {
    let mut e = Entry::default();
    e.set_entry_type(match w.entry_type {
        RaftEntryType::Normal => EntryType::EntryNormal,
        RaftEntryType::ConfChange => EntryType::EntryConfChange,
        RaftEntryType::ConfChangeV2 => EntryType::EntryConfChangeV2,
    });
    e.term = w.term.0;
    e.index = w.index.0;
    e.set_data(w.data.into());
    e.set_context(w.context.into());
    e
}

fn snapshot_to_wire(s: &Snapshot) -> RaftSnapshot {
    let meta = s.get_metadata();
    let conf = meta.get_conf_state();
    RaftSnapshot {
        data: s.get_data().to_vec(),
        metadata: RaftSnapshotMetadata {
            conf_state: RaftConfState {
                voters: conf.get_voters().to_vec(),
                learners: conf.get_learners().to_vec(),
                voters_outgoing: conf.get_voters_outgoing().to_vec(),
                learners_next: conf.get_learners_next().to_vec(),
                auto_leave: conf.auto_leave,
            },
            index: LogIndex(meta.index),
            term: Term(meta.term),
        },
    }
}

fn snapshot_from_wire(w: RaftSnapshot) -> Snapshot {
    let c = w.metadata.conf_state;
    let mut conf = ConfState::default();
    conf.set_voters(c.voters);
    conf.set_learners(c.learners);
    conf.set_voters_outgoing(c.voters_outgoing);
    conf.set_learners_next(c.learners_next);
    conf.auto_leave = c.auto_leave;
    let mut s = Snapshot::default();
    s.set_data(w.data.into());
    let meta = s.mut_metadata();
    meta.set_conf_state(conf);
    meta.index = w.metadata.index.0;
    meta.term = w.metadata.term.0;
    s
}

fn msg_type_to_wire(t: MessageType) -> RaftMessageType {
    use RaftMessageType as W;
    match t {
        MessageType::MsgHup => W::Hup,
        MessageType::MsgBeat => W::Beat,
        MessageType::MsgPropose => W::Propose,
        MessageType::MsgAppend => W::Append,
        MessageType::MsgAppendResponse => W::AppendResponse,
        MessageType::MsgRequestVote => W::RequestVote,
        MessageType::MsgRequestVoteResponse => W::RequestVoteResponse,
        MessageType::MsgSnapshot => W::Snapshot,
        MessageType::MsgHeartbeat => W::Heartbeat,
        MessageType::MsgHeartbeatResponse => W::HeartbeatResponse,
        MessageType::MsgUnreachable => W::Unreachable,
        MessageType::MsgSnapStatus => W::SnapStatus,
        MessageType::MsgCheckQuorum => W::CheckQuorum,
        MessageType::MsgTransferLeader => W::TransferLeader,
        MessageType::MsgTimeoutNow => W::TimeoutNow,
        MessageType::MsgReadIndex => W::ReadIndex,
        MessageType::MsgReadIndexResp => W::ReadIndexResp,
        MessageType::MsgRequestPreVote => W::RequestPreVote,
        MessageType::MsgRequestPreVoteResponse => W::RequestPreVoteResponse,
    }
}

fn msg_type_from_wire(t: RaftMessageType) -> MessageType {
    use RaftMessageType as W;
    match t {
        W::Hup => MessageType::MsgHup,
        W::Beat => MessageType::MsgBeat,
        W::Propose => MessageType::MsgPropose,
        W::Append => MessageType::MsgAppend,
        W::AppendResponse => MessageType::MsgAppendResponse,
        W::RequestVote => MessageType::MsgRequestVote,
        W::RequestVoteResponse => MessageType::MsgRequestVoteResponse,
        W::Snapshot => MessageType::MsgSnapshot,
        W::Heartbeat => MessageType::MsgHeartbeat,
        W::HeartbeatResponse => MessageType::MsgHeartbeatResponse,
        W::Unreachable => MessageType::MsgUnreachable,
        W::SnapStatus => MessageType::MsgSnapStatus,
        W::CheckQuorum => MessageType::MsgCheckQuorum,
        W::TransferLeader => MessageType::MsgTransferLeader,
        W::TimeoutNow => MessageType::MsgTimeoutNow,
        W::ReadIndex => MessageType::MsgReadIndex,
        W::ReadIndexResp => MessageType::MsgReadIndexResp,
        W::RequestPreVote => MessageType::MsgRequestPreVote,
        W::RequestPreVoteResponse => MessageType::MsgRequestPreVoteResponse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_TYPES: [MessageType; 19] = [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgPropose,
        MessageType::MsgAppend,
        MessageType::MsgAppendResponse,
        MessageType::MsgRequestVote,
        MessageType::MsgRequestVoteResponse,
        MessageType::MsgSnapshot,
        MessageType::MsgHeartbeat,
        MessageType::MsgHeartbeatResponse,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgCheckQuorum,
        MessageType::MsgTransferLeader,
        MessageType::MsgTimeoutNow,
        MessageType::MsgReadIndex,
        MessageType::MsgReadIndexResp,
        MessageType::MsgRequestPreVote,
        MessageType::MsgRequestPreVoteResponse,
    ];

    /// A message with every field set to a distinct non-default value.
    fn full_message() -> Message {
        let mut conf = ConfState::default();
        conf.set_voters(vec![1, 2, 3]);
        conf.set_learners(vec![4]);
        conf.set_voters_outgoing(vec![1, 2, 5]);
        conf.set_learners_next(vec![5]);
        conf.auto_leave = true;
        let mut snapshot = Snapshot::default();
        snapshot.set_data(vec![0xde, 0xad].into());
        snapshot.mut_metadata().set_conf_state(conf);
        snapshot.mut_metadata().index = 1000;
        snapshot.mut_metadata().term = 6;
        let mut entries = Vec::new();
        for (i, t) in
            [EntryType::EntryNormal, EntryType::EntryConfChange, EntryType::EntryConfChangeV2]
                .into_iter()
                .enumerate()
        {
            let mut e = Entry::default();
            e.set_entry_type(t);
            e.term = 7;
            e.index = 1001 + i as u64;
            e.set_data(vec![i as u8; 3 + i].into());
            e.set_context(vec![0xc0 + i as u8].into());
            entries.push(e);
        }
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        m.log_term = 6;
        m.index = 1000;
        m.set_entries(entries.into());
        m.commit = 999;
        m.commit_term = 6;
        m.set_snapshot(snapshot);
        m.request_snapshot = 998;
        m.reject = true;
        m.reject_hint = 997;
        m.set_context(b"read-index-ctx".to_vec().into());
        m.deprecated_priority = 3;
        m.priority = -4;
        m
    }

    #[test]
    fn every_field_round_trips() {
        let m = full_message();
        let wire = to_wire(&m);
        assert_eq!(wire.entries.len(), 3);
        assert_eq!(wire.snapshot.as_ref().map(|s| s.metadata.index), Some(LogIndex(1000)));
        let back = from_wire(wire).expect("converts back");
        assert_eq!(back, m);
    }

    #[test]
    fn a_missing_snapshot_stays_missing() {
        let mut m = full_message();
        m.clear_snapshot();
        let wire = to_wire(&m);
        assert_eq!(wire.snapshot, None);
        let back = from_wire(wire).expect("converts back");
        assert!(!back.has_snapshot());
        assert_eq!(back, m);
    }

    #[test]
    fn every_message_type_maps_both_ways() {
        for t in ALL_TYPES {
            let wire = msg_type_to_wire(t);
            assert_eq!(msg_type_from_wire(wire), t);
            let mut m = Message::default();
            m.set_msg_type(t);
            let result = from_wire(to_wire(&m));
            if is_local(wire) {
                assert_eq!(result, Err(PeerCodecError::LocalMessageType { msg_type: wire }));
            } else {
                assert_eq!(result.expect("remote type converts").get_msg_type(), t);
            }
        }
    }

    #[test]
    fn a_message_survives_the_frame_codec() {
        use atoll_proto::peer::{PEER_FRAME_BYTES_MAX, PeerFrame, ShardMessage, ShardPayload};
        let m = full_message();
        let frame = PeerFrame::Raft(vec![ShardMessage {
            shard: atoll_proto::ShardId(3),
            message: ShardPayload::Raft(to_wire(&m)),
        }]);
        let bytes = atoll_proto::encode_frame(&frame).expect("encodes");
        let PeerFrame::Raft(mut batch) =
            atoll_proto::decode_frame(&bytes, PEER_FRAME_BYTES_MAX).expect("decodes")
        else {
            panic!("decoded another frame kind");
        };
        let ShardPayload::Raft(wire) = batch.remove(0).message else { panic!("not raft") };
        let back = from_wire(wire).expect("converts back");
        assert_eq!(back, m);
    }
}
