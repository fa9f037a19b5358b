//! A map over a `Vec` for the shell's few small tables (requests in flight: at most two; pending
//! operations; dirty markers: one per channel). It keeps `HashMap`/`BTreeMap` code out of the wasm
//! module, where size matters more than lookups in a handful of entries.

/// Insertion-ordered key/value pairs with unique keys.
#[derive(Debug)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq, V> VecMap<K, V> {
    /// Insert or replace the value of `key`.
    pub fn insert(&mut self, key: K, value: V) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Insert `value` unless `key` is present.
    pub fn insert_if_absent(&mut self, key: K, value: V) {
        if !self.entries.iter().any(|(k, _)| *k == key) {
            self.entries.push((key, value));
        }
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Remove and return the value of `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(i).1)
    }

    /// Remove every entry whose key and value match `pred`, returning the values.
    pub fn remove_where(&mut self, mut pred: impl FnMut(&K, &V) -> bool) -> Vec<V> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if pred(&self.entries[i].0, &self.entries[i].1) {
                out.push(self.entries.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        out
    }

    /// Take every value out.
    pub fn drain_values(&mut self) -> Vec<V> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}
