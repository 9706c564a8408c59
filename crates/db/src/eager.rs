//! Eager loading: what Django's `select_related` and `prefetch_related` do, as two
//! generic helpers every list uses.
//!
//! - select_related is a join in the list's own statement (see the query modules);
//!   nothing generic is needed beyond diesel's `inner_join`/`left_join`.
//! - prefetch_related is [`prefetch_many`] / [`prefetch_one`]: one batched
//!   `... WHERE parent_id IN (...)` statement per relation, whatever the number of
//!   parents, grouped back onto the parents in their original order.
//!
//! The IN list is cut into chunks of [`MAX_IN_LIST`] keys (below SQLite's and
//! PostgreSQL's bind-parameter limits), so statement counts are constant up to that
//! many parents per call; pages hold at most a few thousand.

use std::collections::HashMap;
use std::hash::Hash;

use crate::DbResult;

/// Most keys bound in one IN list.
pub const MAX_IN_LIST: usize = 10_000;

/// Attaches to each parent the children `load` returns for its key.
///
/// `load` receives distinct keys (at most [`MAX_IN_LIST`] per call) and returns
/// `(parent key, child)` pairs in the order children should appear. Parents whose key
/// has no children get an empty `Vec`. Keys are expected to be unique per parent (they
/// are primary keys in every use).
///
/// ```
/// use napiatke_db::eager::prefetch_many;
/// let parents = vec![(1, "a"), (2, "b"), (3, "c")];
/// let mut calls = 0;
/// let joined = prefetch_many(parents, |p| p.0, |keys: &[i32]| {
///     calls += 1;
///     Ok(keys.iter().filter(|k| **k != 2).map(|k| (*k, k * 10)).collect())
/// })?;
/// assert_eq!(calls, 1);
/// assert_eq!(joined, vec![((1, "a"), vec![10]), ((2, "b"), vec![]), ((3, "c"), vec![30])]);
/// # Ok::<(), napiatke_db::DbError>(())
/// ```
pub fn prefetch_many<P, K, C>(
    parents: Vec<P>,
    key: impl Fn(&P) -> K,
    mut load: impl FnMut(&[K]) -> DbResult<Vec<(K, C)>>,
) -> DbResult<Vec<(P, Vec<C>)>>
where
    K: Eq + Hash + Copy,
{
    let mut grouped: HashMap<K, Vec<C>> = HashMap::with_capacity(parents.len());
    for chunk in distinct_keys(&parents, &key).chunks(MAX_IN_LIST) {
        for (k, child) in load(chunk)? {
            grouped.entry(k).or_default().push(child);
        }
    }
    Ok(parents
        .into_iter()
        .map(|p| {
            let children = grouped.remove(&key(&p)).unwrap_or_default();
            (p, children)
        })
        .collect())
}

/// Attaches to each parent the one value `load` returns for its key (an aggregate
/// row, say), or `C::default()` when it returns none.
///
/// ```
/// use napiatke_db::eager::prefetch_one;
/// let joined = prefetch_one(vec![7, 8], |p| *p, |keys: &[i32]| {
///     Ok(vec![(7, 70)])
/// })?;
/// assert_eq!(joined, vec![(7, 70), (8, 0)]);
/// # Ok::<(), napiatke_db::DbError>(())
/// ```
pub fn prefetch_one<P, K, C>(
    parents: Vec<P>,
    key: impl Fn(&P) -> K,
    mut load: impl FnMut(&[K]) -> DbResult<Vec<(K, C)>>,
) -> DbResult<Vec<(P, C)>>
where
    K: Eq + Hash + Copy,
    C: Default,
{
    let mut found: HashMap<K, C> = HashMap::with_capacity(parents.len());
    for chunk in distinct_keys(&parents, &key).chunks(MAX_IN_LIST) {
        found.extend(load(chunk)?);
    }
    Ok(parents
        .into_iter()
        .map(|p| {
            let value = found.remove(&key(&p)).unwrap_or_default();
            (p, value)
        })
        .collect())
}

/// Keys in first-seen order, without repeats; no parents means no statement at all.
fn distinct_keys<P, K: Eq + Hash + Copy>(parents: &[P], key: &impl Fn(&P) -> K) -> Vec<K> {
    let mut seen = std::collections::HashSet::with_capacity(parents.len());
    parents
        .iter()
        .map(key)
        .filter(|k| seen.insert(*k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_parent_sets_are_chunked_and_regrouped_in_order() {
        let parents: Vec<usize> = (0..MAX_IN_LIST * 2 + 5).rev().collect();
        let mut calls = Vec::new();
        let out = prefetch_many(
            parents.clone(),
            |p| *p,
            |keys| {
                calls.push(keys.len());
                Ok(keys.iter().flat_map(|k| [(*k, *k), (*k, *k + 1)]).collect())
            },
        );
        let out = out.unwrap_or_default();
        assert_eq!(calls, vec![MAX_IN_LIST, MAX_IN_LIST, 5]);
        assert_eq!(out.len(), parents.len());
        assert!(out.iter().all(|(p, c)| c == &vec![*p, *p + 1]));
        assert_eq!(out.first().map(|(p, _)| *p), parents.first().copied());
    }

    #[test]
    fn no_parents_runs_no_statement() {
        let mut called = false;
        let out = prefetch_one(
            Vec::<i64>::new(),
            |p| *p,
            |_| {
                called = true;
                Ok(Vec::<(i64, i64)>::new())
            },
        );
        assert!(out.is_ok_and(|v| v.is_empty()));
        assert!(!called);
    }
}
