//! Which keys the config file accepts, read from the `Deserialize` impls
//! themselves, and the test that docs/configuration.md documents each one.
//!
//! A hand-kept list of keys would go stale the way the documentation does,
//! so the list comes from serde. `Config::deserialize` is driven by a probe
//! deserializer ([`Probe`]) that follows one path of keys and reports what it
//! finds at the end. The report travels back as the error value, which every
//! derived impl passes up unchanged, so each probe run stops where it looked:
//!
//! - a struct calls `deserialize_struct(name, FIELDS, visitor)`: FIELDS are
//!   its keys (what `deny_unknown_fields` accepts; `skip` fields are not in
//!   it, renames are applied); each key is then probed on its own;
//! - `Option`, `Vec` and `Spanned` are looked through (`visit_some`, a
//!   one-element sequence, the span's three private keys);
//! - a unit enum calls `deserialize_enum(name, VARIANTS, _)`: its values;
//! - a struct with a `#[serde(flatten)]` field calls `deserialize_map` and
//!   passes no FIELDS. Its own keys are found by offering candidate keys
//!   (every word of the source tree under `src/`) one at a time: serde's
//!   generated key matcher hands a known key's value to the field's own type
//!   and an unknown one to its catch-all buffer, whose visitor expects "any
//!   value". The flattened internally tagged enum then reports its tag key
//!   (`missing_field`), its variants (`unknown_variant`) and each variant's
//!   keys (`unknown_field` on a key no variant has, which its
//!   `deny_unknown_fields` rejects): serde builds those errors with our error
//!   type, so they carry the lists.
//!
//! Limits, each failing loudly rather than passing quietly where it can: the
//! keys of a flattened variant are leaves here (serde, not the probe,
//! deserializes their values), a flattened struct's key must appear as a
//! word somewhere in `src/`, and a flattened struct must hold an internally
//! tagged enum whose variants deny unknown fields.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::path::Path;

use serde::de::value::{
    BorrowedStrDeserializer, StringDeserializer, U64Deserializer, UnitDeserializer,
};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// One key the config accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The TOML table it belongs to, e.g. `service.target` (`""`: the top level).
    pub table: String,
    /// For a key of one variant of a tagged table: the tag and the variant,
    /// e.g. (`type`, `http`).
    pub variant: Option<(String, String)>,
    pub field: String,
    /// The values a unit enum or a tag accepts (empty: any of its type).
    pub values: Vec<String>,
}

/// What a probe run found, carried back as the deserialization error.
#[derive(Debug, Clone)]
enum Found {
    Struct(Vec<String>),
    /// A struct with a flattened field (`deserialize_map`, no field list).
    FlatStruct,
    Enum(Vec<String>),
    /// Anything else (a string, a number, a list of them, a free-form map).
    Value,
    /// A fed value was asked for; `any` when by serde's catch-all buffer.
    Reached {
        any: bool,
    },
    UnknownField(Vec<String>),
    UnknownVariant(Vec<String>),
    MissingField(String),
    Other(String),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Other(message) => f.write_str(message),
            found => write!(f, "{found:?}"),
        }
    }
}

impl std::error::Error for Found {}

impl de::Error for Found {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Found::Other(msg.to_string())
    }
    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        Found::UnknownField(expected.iter().map(|s| s.to_string()).collect())
    }
    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Found::UnknownVariant(expected.iter().map(|s| s.to_string()).collect())
    }
    fn missing_field(field: &'static str) -> Self {
        Found::MissingField(field.to_string())
    }
}

/// What the probe does once it has followed its path.
enum Action {
    /// Report the kind of value there.
    Describe,
    /// Hand these entries to the map visitor there.
    Feed(Vec<(String, Fed)>),
}

enum Fed {
    /// Reports whether the value was asked for by serde's catch-all buffer.
    Sentinel,
    Str(String),
    Unit,
}

/// `toml::Spanned<T>` deserializes as a struct of this name with three
/// private keys (start, end, value): serde_spanned's `NAME`.
const SPANNED: &str = "$__serde_spanned_private_Spanned";

/// The key under a struct's visitor: a string, as TOML gives it.
fn key<'de, S: DeserializeSeed<'de>>(seed: S, name: &str) -> Result<S::Value, Found> {
    seed.deserialize(StringDeserializer::<Found>::new(name.to_string()))
}

struct Expecting<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

#[derive(Clone, Copy)]
struct Probe<'a> {
    path: &'a [String],
    depth: usize,
    action: &'a Action,
}

impl<'a> Probe<'a> {
    fn deeper(self) -> Probe<'a> {
        Probe {
            depth: self.depth + 1,
            ..self
        }
    }

    fn at_end(&self) -> bool {
        self.depth == self.path.len()
    }

    /// A struct (or a flattened struct's map): follow the path into it, or
    /// do the action.
    fn table<V: Visitor<'static>>(self, found: Found, visitor: V) -> Result<V::Value, Found> {
        if !self.at_end() {
            return visitor.visit_map(OneEntry {
                key: Some(&self.path[self.depth]),
                value: Some(self.deeper()),
            });
        }
        match self.action {
            Action::Describe => Err(found),
            Action::Feed(entries) => visitor.visit_map(FeedMap {
                entries: entries.iter(),
                next: None,
            }),
        }
    }

    fn value(self) -> Result<(), Found> {
        if self.at_end() {
            Err(Found::Value)
        } else {
            Err(Found::Other(format!(
                "the path {:?} goes through a plain value",
                self.path
            )))
        }
    }
}

impl<'a> Deserializer<'static> for Probe<'a> {
    type Error = Found;

    fn deserialize_any<V: Visitor<'static>>(self, _: V) -> Result<V::Value, Found> {
        self.value().map(|_| unreachable!())
    }

    fn deserialize_struct<V: Visitor<'static>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Found> {
        if name == SPANNED {
            return visitor.visit_map(SpannedMap {
                fields,
                next: 0,
                probe: self,
            });
        }
        let fields = fields.iter().map(|s| s.to_string()).collect();
        self.table(Found::Struct(fields), visitor)
    }

    fn deserialize_map<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value, Found> {
        // A derived struct's visitor expects "struct Name"; a map's, "a map".
        if Expecting(&visitor).to_string().starts_with("struct ") {
            self.table(Found::FlatStruct, visitor)
        } else {
            self.value().map(|_| unreachable!())
        }
    }

    fn deserialize_option<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value, Found> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value, Found> {
        visitor.visit_seq(OneElement(Some(self)))
    }

    fn deserialize_newtype_struct<V: Visitor<'static>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Found> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'static>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Found> {
        if self.at_end() {
            Err(Found::Enum(
                variants.iter().map(|s| s.to_string()).collect(),
            ))
        } else {
            self.value().map(|_| unreachable!())
        }
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'static>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// A struct's visitor sees one key, whose value is probed further.
struct OneEntry<'a> {
    key: Option<&'a str>,
    value: Option<Probe<'a>>,
}

impl<'a> MapAccess<'static> for OneEntry<'a> {
    type Error = Found;

    fn next_key_seed<K: DeserializeSeed<'static>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Found> {
        self.key.take().map(|k| key(seed, k)).transpose()
    }

    fn next_value_seed<S: DeserializeSeed<'static>>(&mut self, seed: S) -> Result<S::Value, Found> {
        seed.deserialize(self.value.take().expect("one value after one key"))
    }
}

/// A sequence of one element, probed further.
struct OneElement<'a>(Option<Probe<'a>>);

impl<'a> SeqAccess<'static> for OneElement<'a> {
    type Error = Found;

    fn next_element_seed<S: DeserializeSeed<'static>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Found> {
        self.0.take().map(|p| seed.deserialize(p)).transpose()
    }
}

/// `Spanned<T>`: a zero span, and the value probed further.
struct SpannedMap<'a> {
    fields: &'static [&'static str],
    next: usize,
    probe: Probe<'a>,
}

impl<'a> MapAccess<'static> for SpannedMap<'a> {
    type Error = Found;

    fn next_key_seed<K: DeserializeSeed<'static>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Found> {
        let Some(&field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::<Found>::new(field))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'static>>(&mut self, seed: S) -> Result<S::Value, Found> {
        self.next += 1;
        if self.next == self.fields.len() {
            seed.deserialize(self.probe)
        } else {
            seed.deserialize(U64Deserializer::<Found>::new(0))
        }
    }
}

/// The entries of [`Action::Feed`].
struct FeedMap<'a> {
    entries: std::slice::Iter<'a, (String, Fed)>,
    next: Option<&'a Fed>,
}

impl<'a> MapAccess<'static> for FeedMap<'a> {
    type Error = Found;

    fn next_key_seed<K: DeserializeSeed<'static>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Found> {
        let Some((name, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.next = Some(value);
        key(seed, name).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'static>>(&mut self, seed: S) -> Result<S::Value, Found> {
        match self.next.take().expect("a value after its key") {
            Fed::Sentinel => seed.deserialize(Sentinel),
            Fed::Str(s) => seed.deserialize(StringDeserializer::<Found>::new(s.clone())),
            Fed::Unit => seed.deserialize(UnitDeserializer::<Found>::new()),
        }
    }
}

/// A value that reports who asked for it: serde's catch-all buffer for
/// unknown keys (a visitor expecting "any value") or a field's own type.
struct Sentinel;

impl Deserializer<'static> for Sentinel {
    type Error = Found;

    fn deserialize_any<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value, Found> {
        Err(Found::Reached {
            any: Expecting(&visitor).to_string() == "any value",
        })
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'static>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Follow `path` into `T` and do `action` there.
fn run<T: Deserialize<'static>>(path: &[String], action: &Action) -> Found {
    let probe = Probe {
        path,
        depth: 0,
        action,
    };
    match T::deserialize(probe) {
        Ok(_) => panic!("a probe of {path:?} built a value"),
        Err(found) => found,
    }
}

/// Every key `T` accepts, table by table. `words` are the candidate keys of
/// structs with a flattened field (see the module documentation).
pub fn accepted_keys<T: Deserialize<'static>>(words: &BTreeSet<String>) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    let mut queue: VecDeque<Vec<String>> = VecDeque::from([Vec::new()]);
    let key = |path: &[String], field: &str| Key {
        table: path.join("."),
        variant: None,
        field: field.to_string(),
        values: Vec::new(),
    };
    while let Some(path) = queue.pop_front() {
        match run::<T>(&path, &Action::Describe) {
            Found::Struct(fields) => {
                for field in fields {
                    assert!(
                        !field.starts_with("$__"),
                        "{path:?}: a serde wrapper the probe does not know ({field}); \
                         teach src/config/fields.rs to look through it"
                    );
                    keys.push(key(&path, &field));
                    queue.push_back([path.clone(), vec![field]].concat());
                }
            }
            Found::FlatStruct => {
                for word in words {
                    let feed = Action::Feed(vec![(word.clone(), Fed::Sentinel)]);
                    if let Found::Reached { any: false } = run::<T>(&path, &feed) {
                        keys.push(key(&path, word));
                        queue.push_back([path.clone(), vec![word.clone()]].concat());
                    }
                }
                let (tag, variants) = tagged_enum::<T>(&path);
                for variant in &variants {
                    let feed = Action::Feed(vec![
                        (tag.clone(), Fed::Str(variant.clone())),
                        ("\u{1}".into(), Fed::Unit),
                    ]);
                    let Found::UnknownField(fields) = run::<T>(&path, &feed) else {
                        panic!(
                            "{path:?}: cannot list the keys of {tag} = {variant:?} \
                             (does the variant deny unknown fields?)"
                        );
                    };
                    for field in fields {
                        keys.push(Key {
                            variant: Some((tag.clone(), variant.clone())),
                            ..key(&path, &field)
                        });
                    }
                }
                keys.push(Key {
                    values: variants,
                    ..key(&path, &tag)
                });
            }
            Found::Enum(values) => {
                let (field, table) = path.split_last().expect("the top level is a struct");
                let owner = keys
                    .iter_mut()
                    .find(|k| {
                        k.variant.is_none() && k.table == table.join(".") && &k.field == field
                    })
                    .expect("an enum is reached through its key");
                owner.values = values;
            }
            Found::Value => {}
            other => panic!("{path:?}: the probe found {other:?}"),
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The tag key and the variants of the internally tagged enum flattened
/// into the struct at `path`.
fn tagged_enum<T: Deserialize<'static>>(path: &[String]) -> (String, Vec<String>) {
    let Found::MissingField(tag) = run::<T>(path, &Action::Feed(Vec::new())) else {
        panic!("{path:?}: a flattened field that is not an internally tagged enum");
    };
    // serde checks the struct's own required keys before it reads the
    // flattened enum, so a required key would be reported here instead.
    let feed = Action::Feed(vec![(tag.clone(), Fed::Sentinel)]);
    assert!(
        matches!(run::<T>(path, &feed), Found::Reached { any: true }),
        "{path:?}: `{tag}` is a required key of the struct itself: give it a default \
         (the probe reaches a flattened enum only when the struct's own keys are optional)"
    );
    let feed = Action::Feed(vec![(tag.clone(), Fed::Str("\u{1}".into()))]);
    let Found::UnknownVariant(variants) = run::<T>(path, &feed) else {
        panic!("{path:?}: `{tag}` does not name the variants of a tagged enum");
    };
    (tag, variants)
}

/// Every word of the Rust sources under `dir`, with `_` and `-` swapped
/// too (serde's kebab-case renames).
pub fn source_words(dir: &Path) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                {
                    if w.is_empty() {
                        continue;
                    }
                    words.insert(w.to_string());
                    words.insert(w.replace('_', "-"));
                    words.insert(w.replace('-', "_"));
                }
            }
        }
    }
    words
}

/// One table of docs/configuration.md: a heading that names a TOML table
/// in backticks (`` `[server]` ``, `` `[[service.target]]` ``), optionally
/// with the tag values it covers (`` `type = "http"` ``), and the table rows
/// under it whose first cell names keys in backticks.
#[derive(Debug)]
struct DocTable {
    table: String,
    variants: Vec<String>,
    /// (keys in the first cell, the whole row)
    rows: Vec<(Vec<String>, String)>,
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn doc_tables(doc: &str) -> Vec<DocTable> {
    let mut tables: Vec<DocTable> = Vec::new();
    let mut current: Option<DocTable> = None;
    for line in doc.lines() {
        if line.starts_with('#') {
            tables.extend(current.take());
            let quoted = backticked(line);
            let Some(header) = quoted
                .iter()
                .find(|q| q.starts_with('[') && q.ends_with(']'))
            else {
                continue;
            };
            let table = header.trim_matches(|c| c == '[' || c == ']').to_string();
            let variants = quoted
                .iter()
                .flat_map(|q| q.split('"').skip(1).step_by(2))
                .map(str::to_string)
                .collect();
            current = Some(DocTable {
                table,
                variants,
                rows: Vec::new(),
            });
        } else if let Some(t) = &mut current {
            if let Some(first) = line.strip_prefix('|').and_then(|r| r.split('|').next()) {
                let names = backticked(first);
                if !names.is_empty() {
                    t.rows.push((names, line.to_string()));
                }
            }
        }
    }
    tables.extend(current);
    tables
}

/// What docs/configuration.md is missing or has wrong, one line each.
fn doc_problems(keys: &[Key], doc: &str) -> Vec<String> {
    const DOC: &str = "docs/configuration.md";
    let tables = doc_tables(doc);
    let mut problems = Vec::new();
    for k in keys {
        let section = match &k.variant {
            None => format!("[{}]", k.table),
            Some((tag, v)) => format!("[{}] ({tag} = {v:?})", k.table),
        };
        if k.table.is_empty() {
            if !tables.iter().any(|t| t.table == k.field) {
                problems.push(format!(
                    "{DOC} does not document [{}] (no heading names the table `[{}]`)",
                    k.field, k.field
                ));
            }
            continue;
        }
        let row = tables
            .iter()
            .filter(|t| t.table == k.table)
            .filter(|t| match &k.variant {
                None => t.variants.is_empty(),
                Some((_, v)) => t.variants.contains(v),
            })
            .flat_map(|t| &t.rows)
            .find(|(names, _)| names.contains(&k.field));
        let Some((_, row)) = row else {
            problems.push(format!("{DOC} does not document {section} {}", k.field));
            continue;
        };
        for v in &k.values {
            if !row.contains(&format!("`{v}`")) && !row.contains(&format!("\"{v}\"")) {
                problems.push(format!(
                    "{DOC}: {section} {} does not list the value \"{v}\"",
                    k.field
                ));
            }
        }
    }
    for t in &tables {
        if !keys.iter().any(|k| k.table == t.table) {
            problems.push(format!(
                "{DOC} documents a table [{}] that the config does not have",
                t.table
            ));
            continue;
        }
        for (names, _) in &t.rows {
            for name in names {
                let accepted = keys.iter().any(|k| {
                    k.table == t.table
                        && &k.field == name
                        && match &k.variant {
                            None => t.variants.is_empty(),
                            Some((_, v)) => t.variants.contains(v),
                        }
                });
                if !accepted {
                    problems.push(format!(
                        "{DOC} documents [{}] {name}, which the config does not accept there",
                        t.table
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;
