//! An index from URI patterns (exact, prefix, wildcard) to values, for the broker's
//! subscriptions and the dealer's registrations.
//!
//! - exact: one hash lookup;
//! - prefix: a hash map per pattern plus the set of distinct pattern lengths, so a
//!   lookup probes one slice of the URI per distinct length (few in practice), longest
//!   first;
//! - wildcard: a trie over URI components with a concrete child map and one wildcard
//!   child per node. A depth-first walk that tries the concrete child before the
//!   wildcard child finds the spec's best wildcard match first (a concrete component
//!   earlier beats one later), and all matches when asked.
//!
//! Lookups cost the same with 10 or 100,000 patterns (see `benches/index.rs`).

use std::collections::{BTreeMap, HashMap};

use super::uri::MatchPolicy;

#[derive(Clone, Debug)]
struct Node<T> {
    value: Option<T>,
    concrete: HashMap<String, Node<T>>,
    any: Option<Box<Node<T>>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node { value: None, concrete: HashMap::new(), any: None }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.concrete.is_empty() && self.any.is_none()
    }
}

/// Patterns of all three policies mapped to values of type `T`.
#[derive(Clone, Debug)]
pub struct PatternIndex<T> {
    exact: HashMap<String, T>,
    prefix: HashMap<String, T>,
    /// Distinct prefix pattern lengths (bytes) → how many patterns have that length.
    prefix_lens: BTreeMap<usize, usize>,
    wildcard: Node<T>,
}

impl<T> Default for PatternIndex<T> {
    fn default() -> Self {
        PatternIndex {
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: BTreeMap::new(),
            wildcard: Node::default(),
        }
    }
}

impl<T> PatternIndex<T> {
    /// The value stored for `(pattern, policy)`.
    pub fn get(&self, pattern: &str, policy: MatchPolicy) -> Option<&T> {
        match policy {
            MatchPolicy::Exact => self.exact.get(pattern),
            MatchPolicy::Prefix => self.prefix.get(pattern),
            MatchPolicy::Wildcard => {
                let mut node = &self.wildcard;
                for c in pattern.split('.') {
                    node = if c.is_empty() { node.any.as_deref()? } else { node.concrete.get(c)? };
                }
                node.value.as_ref()
            }
        }
    }

    /// Stores a value for `(pattern, policy)`, replacing any previous one.
    pub fn insert(&mut self, pattern: &str, policy: MatchPolicy, value: T) {
        match policy {
            MatchPolicy::Exact => {
                self.exact.insert(pattern.to_owned(), value);
            }
            MatchPolicy::Prefix => {
                if self.prefix.insert(pattern.to_owned(), value).is_none() {
                    *self.prefix_lens.entry(pattern.len()).or_default() += 1;
                }
            }
            MatchPolicy::Wildcard => {
                let mut node = &mut self.wildcard;
                for c in pattern.split('.') {
                    node = if c.is_empty() {
                        node.any.get_or_insert_with(Box::default)
                    } else {
                        node.concrete.entry(c.to_owned()).or_default()
                    };
                }
                node.value = Some(value);
            }
        }
    }

    /// Removes and returns the value for `(pattern, policy)`.
    pub fn remove(&mut self, pattern: &str, policy: MatchPolicy) -> Option<T> {
        match policy {
            MatchPolicy::Exact => self.exact.remove(pattern),
            MatchPolicy::Prefix => {
                let v = self.prefix.remove(pattern)?;
                if let Some(n) = self.prefix_lens.get_mut(&pattern.len()) {
                    *n -= 1;
                    if *n == 0 {
                        self.prefix_lens.remove(&pattern.len());
                    }
                }
                Some(v)
            }
            MatchPolicy::Wildcard => {
                let parts: Vec<&str> = pattern.split('.').collect();
                remove_wild(&mut self.wildcard, &parts)
            }
        }
    }

    /// The best match for a concrete URI: exact, else the longest prefix, else the
    /// best wildcard pattern (spec precedence).
    pub fn best(&self, uri: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(uri) {
            return Some(v);
        }
        for &len in self.prefix_lens.keys().rev() {
            if let Some(v) = uri.get(..len).and_then(|p| self.prefix.get(p)) {
                return Some(v);
            }
        }
        let parts: Vec<&str> = uri.split('.').collect();
        first_wild(&self.wildcard, &parts)
    }

    /// Every value whose pattern matches the concrete URI.
    pub fn matches<'a>(&'a self, uri: &str, out: &mut Vec<&'a T>) {
        out.extend(self.exact.get(uri));
        for &len in self.prefix_lens.keys() {
            out.extend(uri.get(..len).and_then(|p| self.prefix.get(p)));
        }
        if !self.wildcard.is_empty() {
            let parts: Vec<&str> = uri.split('.').collect();
            all_wild(&self.wildcard, &parts, out);
        }
    }
}

fn first_wild<'a, T>(node: &'a Node<T>, parts: &[&str]) -> Option<&'a T> {
    let Some((head, rest)) = parts.split_first() else { return node.value.as_ref() };
    node.concrete
        .get(*head)
        .and_then(|n| first_wild(n, rest))
        .or_else(|| node.any.as_deref().and_then(|n| first_wild(n, rest)))
}

fn all_wild<'a, T>(node: &'a Node<T>, parts: &[&str], out: &mut Vec<&'a T>) {
    let Some((head, rest)) = parts.split_first() else {
        out.extend(node.value.as_ref());
        return;
    };
    if let Some(n) = node.concrete.get(*head) {
        all_wild(n, rest, out);
    }
    if let Some(n) = node.any.as_deref() {
        all_wild(n, rest, out);
    }
}

fn remove_wild<T>(node: &mut Node<T>, parts: &[&str]) -> Option<T> {
    let Some((head, rest)) = parts.split_first() else { return node.value.take() };
    if head.is_empty() {
        let child = node.any.as_deref_mut()?;
        let v = remove_wild(child, rest);
        if child.is_empty() {
            node.any = None;
        }
        v
    } else {
        let child = node.concrete.get_mut(*head)?;
        let v = remove_wild(child, rest);
        if child.is_empty() {
            node.concrete.remove(*head);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::*;

    #[test]
    fn spec_precedence_examples() {
        let mut idx = PatternIndex::default();
        idx.insert("a1.b2.c3.d4.e55", Exact, 1);
        idx.insert("a1.b2.c3", Prefix, 2);
        idx.insert("a1.b2.c3.d4", Prefix, 3);
        idx.insert("a1.b2..d4.e5", Wildcard, 4);
        idx.insert("a1.b2.c3..e5", Wildcard, 5);
        idx.insert("a1.b2..d4.e5..g7", Wildcard, 6);
        idx.insert("a1.b2..d4..f6.g7", Wildcard, 7);
        assert_eq!(idx.best("a1.b2.c3.d4.e55"), Some(&1));
        assert_eq!(idx.best("a1.b2.c3.d98.e74"), Some(&2));
        assert_eq!(idx.best("a1.b2.c3.d4.e325"), Some(&3));
        assert_eq!(idx.best("a1.b2.c55.d4.e5"), Some(&4));
        assert_eq!(idx.best("a1.b2.c3.d4.e5"), Some(&3), "prefix beats wildcard");
        idx.remove("a1.b2.c3.d4", Prefix);
        idx.remove("a1.b2.c3", Prefix);
        assert_eq!(idx.best("a1.b2.c3.d4.e5"), Some(&5));
        assert_eq!(idx.best("a1.b2.c88.d4.e5.f6.g7"), Some(&6));
        assert_eq!(idx.best("a2.b2.c2.d2.e2"), None);
    }

    #[test]
    fn all_matches_and_removal() {
        let mut idx = PatternIndex::default();
        idx.insert("com.x.update", Exact, 1);
        idx.insert("com.x", Prefix, 2);
        idx.insert("com..update", Wildcard, 3);
        idx.insert("com.x.", Wildcard, 4);
        idx.insert("org", Prefix, 5);
        let mut out = Vec::new();
        idx.matches("com.x.update", &mut out);
        let mut found: Vec<i32> = out.into_iter().copied().collect();
        found.sort();
        assert_eq!(found, vec![1, 2, 3, 4]);
        assert_eq!(idx.get("com..update", Wildcard), Some(&3));
        assert_eq!(idx.remove("com..update", Wildcard), Some(3));
        assert_eq!(idx.remove("com..update", Wildcard), None);
        assert_eq!(idx.get("com.x.", Wildcard), Some(&4), "sibling pattern survives");
        let mut out = Vec::new();
        idx.matches("com.y.update", &mut out);
        assert!(out.is_empty());
        assert_eq!(idx.best("com.xyz"), Some(&2), "prefixes are string prefixes, as the spec says");
    }

    #[test]
    fn multibyte_uris_do_not_split_characters() {
        let mut idx = PatternIndex::default();
        idx.insert("ab", Prefix, 1);
        assert_eq!(idx.best("aé"), None);
        assert_eq!(idx.best("é"), None);
    }
}
