//! A strict walker over parsed YAML: every read names the field's path
//! (`spec.containers[0].image`), and [`Obj::finish`] rejects any key that
//! was not read, so an unsupported field is an error naming it rather than
//! being silently ignored.

use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;

/// A problem with one field of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where: `spec.containers[0].ports[1].containerPort`.
    pub path: String,
    /// What: `not supported`, `expected a string`…
    pub message: String,
}

impl FieldError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result of a field read.
pub type FieldResult<T> = std::result::Result<T, FieldError>;

/// `parent.key` (or `key` at the top).
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A short name of a value's type, for "expected a string, found …".
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn expected(path: &str, what: &str, v: &Value) -> FieldError {
    FieldError::new(path, format!("expected {what}, found {}", type_name(v)))
}

/// A mapping being read: the keys read so far are remembered so that
/// [`Obj::finish`] can reject the others.
#[derive(Debug)]
pub struct Obj<'a> {
    map: &'a Mapping,
    /// This mapping's path (empty at the top of a document).
    pub path: String,
    read: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    /// `value` as a mapping (`null` is an empty mapping).
    pub fn new(value: &'a Value, path: impl Into<String>) -> FieldResult<Self> {
        static EMPTY: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
        let path = path.into();
        let map = match value {
            Value::Mapping(m) => m,
            Value::Null => EMPTY.get_or_init(Mapping::new),
            v => return Err(expected(&path, "a mapping", v)),
        };
        for k in map.keys() {
            if !matches!(k, Value::String(_)) {
                return Err(FieldError::new(
                    &path,
                    format!("keys must be strings, found {}", type_name(k)),
                ));
            }
        }
        Ok(Self {
            map,
            path,
            read: Vec::new(),
        })
    }

    /// The path of `key` in this mapping.
    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key` (marked as read), `None` when absent or null.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Marks keys as accepted and ignored.
    pub fn ignore(&mut self, keys: &[&'static str]) {
        self.read.extend_from_slice(keys);
    }

    /// Whether `key` is there at all (null included).
    pub fn present(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Whether `key` is present (not null).
    pub fn has(&self, key: &str) -> bool {
        !matches!(self.map.get(key), None | Some(Value::Null))
    }

    /// A string field.
    pub fn str(&mut self, key: &'static str) -> FieldResult<Option<String>> {
        let path = self.child(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(expected(&path, "a string", v)),
        }
    }

    /// A required, non-empty string field.
    pub fn required_str(&mut self, key: &'static str) -> FieldResult<String> {
        match self.str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(FieldError::new(self.child(key), "required but missing")),
        }
    }

    /// An integer field.
    pub fn int(&mut self, key: &'static str) -> FieldResult<Option<i64>> {
        let path = self.child(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| FieldError::new(&path, format!("expected an integer, found {n}"))),
            Some(v) => Err(expected(&path, "an integer", v)),
        }
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &'static str) -> FieldResult<Option<bool>> {
        let path = self.child(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(expected(&path, "true or false", v)),
        }
    }

    /// A string or number (Kubernetes quantities: `memory: 64Mi`, `cpu: 1`).
    pub fn quantity(&mut self, key: &'static str) -> FieldResult<Option<String>> {
        let path = self.child(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(expected(&path, "a quantity", v)),
        }
    }

    /// A nested mapping.
    pub fn obj(&mut self, key: &'static str) -> FieldResult<Option<Obj<'a>>> {
        let path = self.child(key);
        self.get(key).map(|v| Obj::new(v, path)).transpose()
    }

    /// A list field: its items with their paths (`key[i]`).
    pub fn list(&mut self, key: &'static str) -> FieldResult<Vec<(&'a Value, String)>> {
        let path = self.child(key);
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Sequence(s)) => Ok(s
                .iter()
                .enumerate()
                .map(|(i, v)| (v, format!("{path}[{i}]")))
                .collect()),
            Some(v) => Err(expected(&path, "a list", v)),
        }
    }

    /// A list of mappings.
    pub fn objs(&mut self, key: &'static str) -> FieldResult<Vec<Obj<'a>>> {
        self.list(key)?
            .into_iter()
            .map(|(v, p)| Obj::new(v, p))
            .collect()
    }

    /// A list of strings (`None` when absent).
    pub fn str_list(&mut self, key: &'static str) -> FieldResult<Option<Vec<String>>> {
        if !self.has(key) {
            self.read.push(key);
            return Ok(None);
        }
        self.list(key)?
            .into_iter()
            .map(|(v, p)| match v {
                Value::String(s) => Ok(s.clone()),
                // `args: [-p, 80]`: Kubernetes wants strings, but a
                // number here is a common slip with one meaning.
                Value::Number(n) => Ok(n.to_string()),
                v => Err(expected(&p, "a string", v)),
            })
            .collect::<FieldResult<Vec<_>>>()
            .map(Some)
    }

    /// A mapping of strings to strings (labels, ConfigMap data).
    pub fn str_map(&mut self, key: &'static str) -> FieldResult<BTreeMap<String, String>> {
        let Some(mut o) = self.obj(key)? else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for (k, v) in o.map {
            let k = k.as_str().unwrap_or_default();
            let p = o.child(k);
            match v {
                Value::String(s) => {
                    out.insert(k.to_string(), s.clone());
                }
                Value::Null => {
                    out.insert(k.to_string(), String::new());
                }
                v => return Err(expected(&p, "a string (quote numbers and booleans)", v)),
            }
        }
        // Every key was read above: nothing for `finish` to reject.
        o.read.clear();
        Ok(out)
    }

    /// Rejects the keys that were not read: `PATH.key: not supported`.
    pub fn finish(&self) -> FieldResult<()> {
        for k in self.map.keys() {
            let k = k.as_str().unwrap_or_default();
            if !self.read.contains(&k) {
                return Err(FieldError::new(self.child(k), "not supported"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn unknown_keys_are_named() {
        let doc = v("a: x\nb: 1\nc: {d: 2}\n");
        let mut o = Obj::new(&doc, "").unwrap();
        assert_eq!(o.str("a").unwrap().as_deref(), Some("x"));
        assert_eq!(o.int("b").unwrap(), Some(1));
        let mut c = o.obj("c").unwrap().unwrap();
        assert_eq!(c.finish().unwrap_err().path, "c.d");
        c = o.obj("c").unwrap().unwrap();
        assert_eq!(c.int("d").unwrap(), Some(2));
        c.finish().unwrap();
        o.finish().unwrap();
        let mut o = Obj::new(&doc, "spec").unwrap();
        o.str("a").unwrap();
        let e = o.finish().unwrap_err();
        assert_eq!(e.path, "spec.b");
        assert_eq!(e.message, "not supported");
    }

    #[test]
    fn types_are_checked() {
        let doc = v("a: [1, 2]\nb: x\nl: {k: 1}\nn: ~\n");
        let mut o = Obj::new(&doc, "m").unwrap();
        assert_eq!(
            o.str("a").unwrap_err().message,
            "expected a string, found a list"
        );
        assert_eq!(o.int("b").unwrap_err().path, "m.b");
        assert!(o.str_map("l").unwrap_err().message.contains("quote"));
        assert_eq!(o.str("n").unwrap(), None);
        assert_eq!(o.str_list("a").unwrap().unwrap(), ["1", "2"]);
        assert!(Obj::new(&v("[1]"), "x").is_err());
        assert!(Obj::new(&v("1: a"), "x").is_err());
    }
}
