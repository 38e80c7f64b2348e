//! [`StatementCache`]: the bounded, least-recently-used map from SQL text to what a driver keeps
//! for a statement (a prepared statement, a statement id, its columns).
//!
//! For driver authors. Both built-in drivers use it: the PostgreSQL driver for its named prepared
//! statements, the SQLite driver for the statement ids it shares with its connection thread.
//!
//! # Examples
//!
//! ```
//! use anysql_core::statement_cache::StatementCache;
//! use std::num::NonZeroUsize;
//!
//! let mut cache = StatementCache::new(NonZeroUsize::new(2).unwrap());
//! assert!(cache.insert("SELECT 1", 1).is_none());
//! assert!(cache.insert("SELECT 2", 2).is_none());
//! cache.get("SELECT 1"); // now the most recently used
//! let evicted = cache.insert("SELECT 3", 3);
//! assert_eq!(evicted, Some(("SELECT 2".into(), 2)));
//! assert_eq!(cache.len(), 2);
//! ```

use std::fmt;
use std::num::NonZeroUsize;

use lru::LruCache;

/// A bounded map from SQL text to `V` that evicts the least recently used entry when full.
///
/// Keys are the statement text as the caller wrote it, or any text the driver derives from it
/// (the PostgreSQL driver keys a statement re-prepared with declared parameter types by the SQL, a
/// NUL and the types). Lookups take a `&str` and allocate nothing; only a new entry allocates.
pub struct StatementCache<V> {
    map: LruCache<Box<str>, V>,
}

impl<V> StatementCache<V> {
    /// An empty cache holding at most `capacity` statements.
    pub fn new(capacity: NonZeroUsize) -> Self {
        StatementCache {
            map: LruCache::new(capacity),
        }
    }

    /// The most statements it holds.
    pub fn capacity(&self) -> usize {
        self.map.cap().get()
    }

    /// How many statements it holds now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no statement.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entry for `sql`, marked most recently used.
    pub fn get(&mut self, sql: &str) -> Option<&mut V> {
        self.map.get_mut(sql)
    }

    /// The entry for `sql`, leaving the order of use as it is.
    pub fn peek(&mut self, sql: &str) -> Option<&mut V> {
        self.map.peek_mut(sql)
    }

    /// Adds `value` for `sql` as the most recently used entry. Returns what made room for it: the
    /// least recently used entry if the cache was full, or the entry `sql` had before.
    pub fn insert(&mut self, sql: impl Into<Box<str>>, value: V) -> Option<(Box<str>, V)> {
        self.map.push(sql.into(), value)
    }

    /// Removes and returns the entry for `sql`.
    pub fn remove(&mut self, sql: &str) -> Option<V> {
        self.map.pop(sql)
    }

    /// Keeps only the entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.map.retain(|sql, value| keep(sql, value));
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The entries, most recently used first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> + '_ {
        self.map.iter().map(|(sql, value)| (&**sql, value))
    }
}

/// The entries, least recently used first, so that inserting them into another cache in this
/// order keeps their order of use.
impl<V> IntoIterator for StatementCache<V> {
    type Item = (Box<str>, V);
    type IntoIter = lru::IntoIter<Box<str>, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.into_iter()
    }
}

impl<V> fmt::Debug for StatementCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_and_retains() {
        let mut cache = StatementCache::new(NonZeroUsize::new(3).unwrap());
        for (i, sql) in ["a", "a\0int8", "b"].into_iter().enumerate() {
            assert!(cache.insert(sql, i).is_none());
        }
        assert_eq!(cache.peek("a"), Some(&mut 0));
        // `peek` left "a" the least recently used.
        assert_eq!(cache.insert("c", 3), Some(("a".into(), 0)));
        cache.retain(|sql, _| !sql.starts_with("a\0"));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.remove("b"), Some(2));
        let left: Vec<_> = cache.into_iter().collect();
        assert_eq!(left, [("c".into(), 3)]);
    }
}
