//! What a search reads: a snapshot of every bucket, each taken under that bucket's own
//! read lock, and read once every lock is released.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use super::tree::Bucket;
use super::{read, PairSlot, QuickHash};
use crate::search::{Page, SearchRequest};
use crate::subscription::Subscription;

/// Every bucket of a store, each as it was when it was taken. It holds no lock and
/// nothing of the store but reference counts: reading it keeps no writer waiting.
pub(super) struct StoreSnapshot {
    buckets: Vec<Bucket>,
    /// Whether a subscription was removed while the buckets were being taken. Only then
    /// can one id be in two of them: removed from a bucket already taken, and inserted
    /// again, under the same id, into one not taken yet.
    may_repeat: bool,
}

/// A [`StoreSnapshot`] being taken, pair slot by pair slot.
pub(super) struct TakingSnapshot<'a> {
    removals: &'a AtomicU64,
    removals_before: u64,
    buckets: Vec<Bucket>,
}

impl<'a> TakingSnapshot<'a> {
    /// Starts a snapshot of a store whose removals `removals` counts.
    pub(super) fn begin(removals: &'a AtomicU64) -> Self {
        TakingSnapshot {
            removals,
            // Acquire, against the release of the count: a removal counted here had
            // finished with its bucket before any bucket is taken.
            removals_before: removals.load(Ordering::Acquire),
            buckets: Vec::new(),
        }
    }

    /// Takes the buckets of one pair: its untemplated bucket, then each template
    /// shard's buckets, each shard under its read lock for one reference count per
    /// bucket in it. A writer to that shard waits that long at most; writers elsewhere
    /// and dispatches do not wait at all.
    pub(super) fn take(&mut self, slot: &PairSlot) {
        self.buckets.extend(read(&slot.untemplated.0).clone());
        for shard in &slot.templated {
            self.buckets.extend(read(&shard.0).values().cloned());
        }
    }

    pub(super) fn finish(self) -> StoreSnapshot {
        // A removal that could put an id in two buckets taken here finished its write
        // before a later insert's, which came before the later bucket was taken, under
        // that bucket's lock: this load happens after it, and sees it counted.
        let removals_after = self.removals.load(Ordering::Acquire);
        StoreSnapshot {
            buckets: self.buckets,
            may_repeat: removals_after != self.removals_before,
        }
    }
}

impl StoreSnapshot {
    /// How many subscriptions the buckets taken hold, repeats included.
    #[cfg(test)]
    pub(super) fn subscriptions_taken(&self) -> usize {
        self.buckets.iter().map(Bucket::len).sum()
    }

    /// Evaluates `request` over the snapshot, outside every lock. Each subscription is
    /// read by reference, through the nodes the snapshot keeps alive.
    pub(super) fn search(&self, request: &SearchRequest) -> Page<Subscription> {
        let all = self.buckets.iter().flat_map(Bucket::iter);
        if !self.may_repeat {
            return request.evaluate(all);
        }
        // Rare (a removal raced the snapshot), and then the first of each id is kept.
        let mut seen = HashSet::with_hasher(QuickHash::default());
        request.evaluate(all.filter(|s| seen.insert(s.id())))
    }
}
