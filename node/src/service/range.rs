//! Range: a request within one shard reads it after its ReadIndex; a request spanning shards
//! reads every shard at ONE revision (DESIGN §4, decision D15), so the merged answer is a
//! state the store really was in, never one shard before a write and another after it.
//!
//! Revisions are comparable across shards (D3), and a shard whose revision is `r` will
//! never again write at or below `r`. So once every shard involved is at or above `R`,
//! reading each at `R` gives a consistent cut:
//! - linearizable: after each shard's ReadIndex, the cut must include every write any of
//!   them acknowledged, so `R` is at least the highest shard revision seen; shards below it
//!   are closed up to it (a `Close` entry through their leader, D13) before reading;
//! - serializable: `R` is the lowest revision among the local replicas, which needs no
//!   leader and no proposal (if a shard here has applied no write, or one compacted above
//!   it, each shard is read at its own revision instead, as before closed revisions);
//! - at an explicit revision: shards below it are closed up to it, unless it is above every
//!   shard, which is etcd's "future revision".

use super::NodeService;
use atoll_proto::{AtollError, CloseRequest, RangeRequest, RangeResponse, ShardId, WriteOp};
use atoll_router::merge::{merge_ranges, shard_request};
use atoll_shard::mvcc::{Counting, MvccStore, validate_range};
use std::sync::Arc;

/// Where one shard stands in the snapshot a cross-shard read plans from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ShardHead {
    /// The shard's revision: it never writes at or below it again.
    pub revision: i64,
    /// Reads below it fail.
    pub compact_revision: i64,
}

/// What a cross-shard read does with one snapshot of its shards.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cut {
    /// Read every shard at this revision (above 0).
    ReadAt(i64),
    /// Read every shard at its own current revision: every shard is at the cut already, or
    /// (serializable) no cut needs no close: a shard here has applied no write at all, or
    /// one compacted above the lowest shard revision.
    EachCurrent,
    /// Close these shards (by position) up to the revision, then plan again.
    Close(Vec<usize>, i64),
}

/// What one planned read found.
enum Planned {
    /// Every part, read at the planned revision.
    Read(Vec<RangeResponse>),
    /// These parts (by position) must be closed up to the revision first.
    Behind(Vec<usize>, i64),
}

/// Plans a read of `heads` for `req`. `floor` is the lowest revision a linearizable read
/// may return: `None` on the first look after the ReadIndexes, which takes the highest
/// shard revision; after closing shards up to a revision, that revision.
pub(super) fn plan_cut(req: &RangeRequest, heads: &[ShardHead], floor: Option<i64>) -> Cut {
    let newest = heads.iter().map(|h| h.revision).max().unwrap_or(0);
    let oldest = heads.iter().map(|h| h.revision).min().unwrap_or(0);
    let target = if req.revision > 0 {
        if req.revision > newest {
            // Above every shard: each part answers etcd's "future revision".
            return Cut::ReadAt(req.revision);
        }
        req.revision
    } else if req.serializable {
        let compacted = heads.iter().map(|h| h.compact_revision).max().unwrap_or(0);
        // A shard that has applied nothing here is most often one nobody writes to; a cut
        // at revision 0 would read every shard empty until it is written.
        let cut = oldest > 0 && oldest < newest && oldest >= compacted;
        return if cut { Cut::ReadAt(oldest) } else { Cut::EachCurrent };
    } else {
        floor.unwrap_or(newest)
    };
    let behind: Vec<usize> = (0..heads.len()).filter(|i| heads[*i].revision < target).collect();
    if !behind.is_empty() {
        return Cut::Close(behind, target);
    }
    match req.revision {
        0 if oldest == newest => Cut::EachCurrent,
        0 => Cut::ReadAt(oldest),
        at => Cut::ReadAt(at),
    }
}

impl NodeService {
    pub(super) async fn range(&self, req: RangeRequest) -> Result<RangeResponse, AtollError> {
        self.range_counted(req, Counting::Exact).await
    }

    /// [`NodeService::range`]; with [`Counting::Skip`] the answer's `count` is not the
    /// range's (a range stream's chunks, decision D22).
    pub(super) async fn range_counted(
        &self,
        req: RangeRequest,
        counting: Counting,
    ) -> Result<RangeResponse, AtollError> {
        validate_range(&req)?;
        let inner = &self.inner;
        // A range that holds no key still gets an answer from one shard (count 0, header).
        let mut parts: Vec<(ShardId, RangeRequest)> = inner
            .shards
            .spans(&req.key, &req.range_end)
            .into_iter()
            .map(|span| (span.shard.id, shard_request(&req, &span.key, &span.range_end)))
            .collect();
        if parts.is_empty()
            && let Some((id, _)) = inner.shards.first()
        {
            parts.push((id, req.clone()));
        }
        for (id, _) in &parts {
            inner.shards.handle(*id)?.published.count_request();
        }
        let mut term = 0;
        if req.serializable {
            for (id, _) in &parts {
                term = term.max(inner.shards.handle(*id)?.published.term());
            }
        } else {
            let confirmed = parts.iter().map(|(id, _)| self.read_index(*id));
            for t in futures::future::try_join_all(confirmed).await? {
                term = term.max(t);
            }
        }
        let _permit = inner.reads.acquire().await.map_err(|_| AtollError::Stopping)?;
        let shards: Vec<ShardId> = parts.iter().map(|(id, _)| *id).collect();
        let stores = parts
            .into_iter()
            .map(|(id, r)| Ok((inner.shards.handle(id)?.store.clone(), r)))
            .collect::<Result<Vec<_>, AtollError>>()?;
        // One shard plans a read at its own revision and never closes anything.
        let answers = self.read_at_one_revision(&req, &shards, Arc::new(stores), counting).await?;
        let mut resp = match <[RangeResponse; 1]>::try_from(answers) {
            Ok([one]) => one,
            Err(answers) => merge_ranges(&req, answers),
        };
        self.fill(&mut resp.header, term);
        Ok(resp)
    }

    /// Reads every part at one revision, closing shards that are behind it first.
    async fn read_at_one_revision(
        &self,
        req: &RangeRequest,
        shards: &[ShardId],
        parts: Arc<Vec<(MvccStore, RangeRequest)>>,
        counting: Counting,
    ) -> Result<Vec<RangeResponse>, AtollError> {
        // Closing raises a shard to the revision for good, so a plan after the closes finds
        // nothing behind; one that does means a shard went backwards.
        let mut floor = None;
        loop {
            let req = req.clone();
            match self
                .read_planned(Arc::clone(&parts), counting, move |heads| {
                    plan_cut(&req, heads, floor)
                })
                .await?
            {
                Planned::Read(answers) => return Ok(answers),
                Planned::Behind(_, revision) if floor.is_some() => {
                    return Err(AtollError::StorageFailed {
                        reason: format!("a shard closed up to revision {revision} reads below it"),
                    });
                }
                Planned::Behind(behind, revision) => {
                    let closes = behind.into_iter().map(|i| self.close_up_to(shards[i], revision));
                    futures::future::try_join_all(closes).await?;
                    floor = Some(revision);
                }
            }
        }
    }

    /// Takes one snapshot of the node's database, plans from the parts' heads in it, and
    /// either reads every part at the planned revision from that snapshot or says which
    /// parts to close first.
    async fn read_planned(
        &self,
        parts: Arc<Vec<(MvccStore, RangeRequest)>>,
        counting: Counting,
        plan: impl FnOnce(&[ShardHead]) -> Cut + Send + 'static,
    ) -> Result<Planned, AtollError> {
        let db = self.inner.storage.db.clone();
        tokio::task::spawn_blocking(move || {
            let snap = db.snapshot();
            let states = parts
                .iter()
                .map(|(store, _)| store.apply_state_at(&snap))
                .collect::<Result<Vec<_>, _>>()
                .map_err(AtollError::from)?;
            let heads: Vec<ShardHead> = states
                .iter()
                .map(|s| ShardHead { revision: s.revision, compact_revision: s.compact_revision })
                .collect();
            let revision = match plan(&heads) {
                Cut::ReadAt(revision) => Some(revision),
                Cut::EachCurrent => None,
                Cut::Close(behind, revision) => return Ok(Planned::Behind(behind, revision)),
            };
            // Each part is read with the apply state its head came from: one read of it.
            let answers = parts
                .iter()
                .zip(&states)
                .map(|((store, r), state)| {
                    let at = RangeRequest { revision: revision.unwrap_or(r.revision), ..r.clone() };
                    let mut answer = store
                        .range_in_state(&snap, state, &at, counting)
                        .map_err(|e| e.to_wire())?;
                    // A read of "now" across shards shows the store at the cut, and its
                    // header says so: a watch from the next revision then misses nothing
                    // (list-then-watch), where a shard's newer revision would skip events.
                    if let (0, Some(cut)) = (r.revision, revision) {
                        answer.header.revision = cut;
                    }
                    Ok(answer)
                })
                .collect::<Result<Vec<_>, AtollError>>()?;
            Ok(Planned::Read(answers))
        })
        .await
        .map_err(|_| AtollError::Stopping)?
    }

    /// Raises `shard` to at least `revision` through its leader, then waits until the local
    /// replica has applied that (a ReadIndex after the close covers it).
    async fn close_up_to(&self, shard: ShardId, revision: i64) -> Result<(), AtollError> {
        let op = WriteOp::Close(CloseRequest { shard, revision });
        self.write_on(shard, op, super::Origin::Client).await?;
        self.read_index(shard).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(revisions: &[(i64, i64)]) -> Vec<ShardHead> {
        revisions
            .iter()
            .map(|&(revision, compact_revision)| ShardHead { revision, compact_revision })
            .collect()
    }

    #[test]
    fn linearizable_closes_shards_below_the_newest_then_reads_at_the_oldest() {
        let req = RangeRequest::default();
        assert_eq!(
            plan_cut(&req, &heads(&[(30, 0), (10, 0), (20, 0)]), None),
            Cut::Close(vec![1, 2], 30)
        );
        // After the closes, a write raised the first shard further: the cut is the oldest
        // shard, still at or above the floor.
        assert_eq!(plan_cut(&req, &heads(&[(45, 0), (30, 0), (31, 0)]), Some(30)), Cut::ReadAt(30));
    }

    #[test]
    fn shards_already_level_need_no_close() {
        let cut = plan_cut(&RangeRequest::default(), &heads(&[(7, 0), (7, 3)]), None);
        assert_eq!(cut, Cut::EachCurrent);
    }

    #[test]
    fn serializable_reads_at_the_oldest_local_revision_without_closing() {
        let req = RangeRequest { serializable: true, ..Default::default() };
        assert_eq!(plan_cut(&req, &heads(&[(30, 0), (10, 0)]), None), Cut::ReadAt(10));
        // A shard compacted above the oldest: each shard at its own revision.
        assert_eq!(plan_cut(&req, &heads(&[(30, 20), (10, 0)]), None), Cut::EachCurrent);
        // A shard that has applied nothing here (most often one nobody writes to).
        assert_eq!(plan_cut(&req, &heads(&[(30, 0), (0, 0)]), None), Cut::EachCurrent);
    }

    #[test]
    fn an_explicit_revision_closes_shards_below_it_unless_it_is_in_the_future() {
        let req = RangeRequest { revision: 20, ..Default::default() };
        assert_eq!(plan_cut(&req, &heads(&[(30, 0), (10, 0)]), None), Cut::Close(vec![1], 20));
        assert_eq!(plan_cut(&req, &heads(&[(30, 0), (20, 0)]), None), Cut::ReadAt(20));
        let future = RangeRequest { revision: 40, ..Default::default() };
        assert_eq!(plan_cut(&future, &heads(&[(30, 0), (10, 0)]), None), Cut::ReadAt(40));
        let serializable = RangeRequest { serializable: true, ..req };
        assert_eq!(
            plan_cut(&serializable, &heads(&[(30, 0), (10, 0)]), None),
            Cut::Close(vec![1], 20)
        );
    }
}
