//! What a fan-out makes once and reuses for every subscriber: an
//! announcement read back, an alert text per variant, a post body per
//! language and format, a `component_update` per component.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Most entries kept between fan-outs; past that the cache starts over,
/// which only bounds a long run (a fan-out needs a handful).
const ENTRIES: usize = 256;

/// A bounded map filled on first use, shared by the mailer's tasks.
pub(super) struct Cache<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub(super) fn new() -> Cache<K, V> {
        Cache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key`, made by `make` the first time. An error is
    /// returned and not kept, so the next call tries again.
    pub(super) fn get_or_make<E>(
        &self,
        key: K,
        make: impl FnOnce(&K) -> Result<V, E>,
    ) -> Result<V, E> {
        // A panic while making a value leaves the map as it was.
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = entries.get(&key) {
            return Ok(found.clone());
        }
        let made = make(&key)?;
        if entries.len() >= ENTRIES {
            entries.clear();
        }
        entries.insert(key, made.clone());
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_made_once_an_error_is_not_kept_and_the_size_is_bounded() {
        let cache = Cache::new();
        let made = std::cell::Cell::new(0);
        let make = |key: &usize| {
            made.set(made.get() + 1);
            Ok::<_, ()>(key * 2)
        };
        assert_eq!(cache.get_or_make(3, make), Ok(6));
        assert_eq!(cache.get_or_make(3, make), Ok(6));
        assert_eq!(made.get(), 1);
        assert_eq!(cache.get_or_make(4, |_| Err("no")), Err("no"));
        assert_eq!(cache.get_or_make(4, make), Ok(8));
        assert_eq!(made.get(), 2);
        for key in 0..3 * ENTRIES {
            cache.get_or_make(key, make).unwrap();
        }
        let kept = cache.entries.lock().unwrap().len();
        assert!((1..=ENTRIES).contains(&kept), "{kept}");
    }
}
