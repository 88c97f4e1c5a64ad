//! Taking a host's trait object by value without wrapping it twice.
//!
//! Builders take `impl SubscriptionStore`, `impl Notifier`, ... and keep an
//! `Arc<dyn ...>`. A host that already holds an `Arc<dyn SubscriptionStore>` (to share
//! it with its own code) passes it the same way; wrapping it in a second `Arc` would
//! put the forwarding implementation, and the future it boxes, on every call. So an
//! `Arc<dyn Trait>` is recognised and kept as it is.

use std::any::Any;
use std::sync::Arc;

/// `value` as a shared trait object: itself when it already is an `Arc<Object>`,
/// otherwise `wrap(value)` (an `Arc::new` coerced to the trait object).
pub(crate) fn into_shared<Object, T>(value: T, wrap: impl FnOnce(T) -> Arc<Object>) -> Arc<Object>
where
    Object: ?Sized + 'static,
    T: 'static,
{
    let mut slot = Some(value);
    if let Some(shared) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Arc<Object>>>() {
        if let Some(shared) = shared.take() {
            return shared;
        }
    }
    wrap(
        slot.take()
            .expect("taken only when it was an Arc of the trait object"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::{DiscardingNotifier, Notifier};

    #[test]
    fn an_arc_of_the_trait_object_is_kept_as_it_is() {
        let shared: Arc<dyn Notifier> = Arc::new(DiscardingNotifier);
        let kept = into_shared(Arc::clone(&shared), |n| Arc::new(n) as Arc<dyn Notifier>);
        assert!(Arc::ptr_eq(&shared, &kept));

        let wrapped = into_shared(DiscardingNotifier, |n| Arc::new(n) as Arc<dyn Notifier>);
        assert_eq!(Arc::strong_count(&wrapped), 1);
    }
}
