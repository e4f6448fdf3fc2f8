use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Stable index of a class inside one head: ids are handed out in creation order and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassId(pub u32);

impl ClassId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for ClassId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Class names in creation order. Serialised as the plain list of names; the lookup map is rebuilt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct ClassTable {
    names: Vec<String>,
    by_name: HashMap<String, ClassId>,
}

impl ClassTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn id(&self, name: &str) -> Option<ClassId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: ClassId) -> Option<&str> {
        self.names.get(id.index()).map(String::as_str)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Id of `name`, creating the class if needed; the flag says whether it was new.
    pub fn get_or_insert(&mut self, name: &str) -> (ClassId, bool) {
        if let Some(id) = self.id(name) {
            return (id, false);
        }
        let id = ClassId(self.names.len() as u32);
        self.names.push(name.to_owned());
        self.by_name.insert(name.to_owned(), id);
        (id, true)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ClassId, &str)> {
        self.names.iter().enumerate().map(|(i, n)| (ClassId(i as u32), n.as_str()))
    }
}

impl From<Vec<String>> for ClassTable {
    fn from(names: Vec<String>) -> Self {
        let mut table = ClassTable::new();
        for n in &names {
            table.get_or_insert(n);
        }
        table
    }
}

impl From<ClassTable> for Vec<String> {
    fn from(t: ClassTable) -> Self {
        t.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_names_roundtrip() {
        let mut t = ClassTable::new();
        assert_eq!(t.get_or_insert("cat"), (ClassId(0), true));
        assert_eq!(t.get_or_insert("dog"), (ClassId(1), true));
        assert_eq!(t.get_or_insert("cat"), (ClassId(0), false));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"["cat","dog"]"#);
        let back: ClassTable = serde_json::from_str(&json).unwrap();
        assert_eq!(back.id("dog"), Some(ClassId(1)));
        assert_eq!(back, t);
    }
}
