//! Where a bucket lives, and how a writer edits it: in place when no reader holds a
//! snapshot of it, on a copy otherwise.

use std::sync::{Arc, RwLock};

use compact_str::CompactString;

use super::tree::{Bucket, Key};
use super::{read, write, TemplateMap};
use crate::subscription::Subscription;

/// Where one bucket lives: its pair's untemplated slot, or its template's shard map.
pub(super) enum Place<'a> {
    Untemplated(&'a RwLock<Option<Bucket>>),
    Templated(&'a RwLock<TemplateMap>, &'a str),
}

impl Place<'_> {
    /// The current bucket, if any: a snapshot, for one reference count.
    pub(super) fn snapshot(&self) -> Option<Bucket> {
        match *self {
            Place::Untemplated(slot) => read(slot).clone(),
            Place::Templated(shard, template) => read(shard).get(template).cloned(),
        }
    }

    /// Whether the bucket holds a subscription at `key`.
    pub(super) fn contains(&self, key: Key<'_>) -> bool {
        match *self {
            Place::Untemplated(slot) => read(slot).as_ref().is_some_and(|b| b.contains(key)),
            Place::Templated(shard, template) => {
                read(shard).get(template).is_some_and(|b| b.contains(key))
            }
        }
    }

    /// Applies `edit` to the bucket; `None` when there is no bucket. Callers hold the
    /// writers' lock, so no other write happens meanwhile.
    ///
    /// When no reader holds a snapshot of the bucket (the usual case), the edit is made
    /// in place, under the bucket's lock: nothing is copied, and only the nodes on one
    /// path are touched. Otherwise the edit is made on a copy, outside the lock (sharing
    /// all but the copied path), and the copy is swapped in: readers then wait for no
    /// more than the swap, and the snapshots they hold stay as they were.
    pub(super) fn edit<R>(&self, edit: impl FnOnce(&mut Bucket) -> R) -> Option<R> {
        match *self {
            Place::Untemplated(slot) => edit_bucket(slot, Option::as_mut, edit),
            Place::Templated(shard, template) => {
                edit_bucket(shard, |shard| shard.get_mut(template), edit)
            }
        }
    }

    /// Makes the bucket, of one subscription. Callers hold the writers' lock and found
    /// no bucket.
    pub(super) fn create(&self, only: Arc<Subscription>) {
        match *self {
            Place::Untemplated(slot) => *write(slot) = Some(Bucket::One(only)),
            Place::Templated(shard, template) => {
                write(shard).insert(CompactString::new(template), Bucket::One(only));
            }
        }
    }

    /// Drops the bucket. Callers hold the writers' lock.
    pub(super) fn drop_bucket(&self) {
        let dropped = match *self {
            Place::Untemplated(slot) => write(slot).take(),
            Place::Templated(shard, template) => write(shard).remove(template),
        };
        // After the lock is released.
        drop(dropped);
    }
}

/// [`Place::edit`], for a bucket that `locate` finds in what `lock` guards.
fn edit_bucket<T, R>(
    lock: &RwLock<T>,
    locate: impl Fn(&mut T) -> Option<&mut Bucket>,
    edit: impl FnOnce(&mut Bucket) -> R,
) -> Option<R> {
    let mut guard = write(lock);
    let bucket = locate(&mut guard)?;
    if !bucket.is_shared() {
        return Some(edit(bucket));
    }
    let mut next = bucket.clone();
    drop(guard);
    // An edit that finds nothing to do (a duplicate, a miss) may still have copied
    // nodes: the copy holds the same subscriptions, so swapping it in changes nothing.
    let result = edit(&mut next);
    let previous = locate(&mut write(lock)).map(|current| std::mem::replace(current, next));
    // Dropping the previous version may free the nodes only it used: not under the lock.
    drop(previous);
    Some(result)
}
