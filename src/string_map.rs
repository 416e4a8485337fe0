//! A small string-to-string map kept sorted by key: custom parameters and stage variables.
//!
//! Built from JSON objects (whose keys arrive sorted and unique) and read by iterating, so a
//! sorted `Vec` does the job; another `BTreeMap` instantiation costs kilobytes of .wasm.

/// Pairs sorted by key, keys unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringMap(Vec<(String, String)>);

impl StringMap {
    pub fn new() -> Self {
        StringMap(Vec::new())
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn insert(&mut self, key: String, value: String) {
        match self
            .0
            .binary_search_by(|(k, _)| k.as_str().cmp(key.as_str()))
        {
            Ok(at) => {
                if let Some(pair) = self.0.get_mut(at) {
                    pair.1 = value;
                }
            }
            Err(at) => self.0.insert(at, (key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let at = self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok()?;
        self.0.get(at).map(|(_, v)| v.as_str())
    }

    /// Pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<const N: usize> From<[(&str, &str); N]> for StringMap {
    fn from(pairs: [(&str, &str); N]) -> Self {
        let mut map = StringMap::new();
        for (key, value) in pairs {
            map.insert(key.to_string(), value.to_string());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_sorted_and_unique_last_value_wins() {
        let mut map = StringMap::new();
        map.insert("b".into(), "1".into());
        map.insert("a".into(), "2".into());
        map.insert("c".into(), "3".into());
        map.insert("b".into(), "4".into());
        let pairs: Vec<_> = map.iter().collect();
        assert_eq!(pairs, [("a", "2"), ("b", "4"), ("c", "3")]);
        assert_eq!(map.get("b"), Some("4"));
        assert_eq!(map.get("d"), None);
        assert_eq!(map.len(), 3);
        assert!(!map.is_empty());
        assert!(StringMap::new().is_empty());
    }
}
