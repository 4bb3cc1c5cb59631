//! The config keys serde accepts against docs/configuration.md, and the probe itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::*;
use crate::config::Config;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn configuration_md_documents_every_key_the_config_accepts() {
    let keys = accepted_keys::<Config>(&source_words(&root().join("src")));
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let problems = doc_problems(&keys, &doc);
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// A made-up config with every shape the probe must see through.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Top {
    plain: u32,
    #[serde(rename = "renamed_key")]
    renamed: Option<String>,
    #[serde(skip)]
    skipped: u32,
    #[serde(default, with = "humantime_serde")]
    wait: Duration,
    nested: Option<Spanned<Inner>>,
    #[serde(rename = "item")]
    items: Vec<Flat>,
    free: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    mode: Mode,
    deep: Spanned<Vec<Leaf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Leaf {
    leaf_value: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum Mode {
    OneWay,
    Other,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Flat {
    #[serde(flatten)]
    kind: Kind,
    #[serde(default)]
    outer_count: u32,
    #[serde(default, with = "humantime_serde")]
    outer_wait: Duration,
    outer_table: Option<Leaf>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
#[allow(dead_code)]
enum Kind {
    Alpha { a_field: String },
    Beta { b_one: u32, b_two: Vec<u16> },
}

fn k(table: &str, field: &str) -> Key {
    Key {
        table: table.into(),
        variant: None,
        field: field.into(),
        values: Vec::new(),
    }
}

#[test]
fn the_probe_sees_through_every_shape_the_config_uses() {
    let keys = accepted_keys::<Top>(&source_words(&root().join("src/config")));
    let variant = |field: &str, v: &str| Key {
        variant: Some(("kind".into(), v.into())),
        ..k("item", field)
    };
    let mut want = vec![
        k("", "plain"),
        k("", "renamed_key"),
        k("", "wait"),
        k("", "nested"),
        k("", "item"),
        k("", "free"),
        Key {
            values: vec!["one-way".into(), "other".into()],
            ..k("nested", "mode")
        },
        k("nested", "deep"),
        k("nested.deep", "leaf_value"),
        k("item", "outer_count"),
        k("item", "outer_wait"),
        k("item", "outer_table"),
        k("item.outer_table", "leaf_value"),
        Key {
            values: vec!["alpha".into(), "beta".into()],
            ..k("item", "kind")
        },
        variant("a_field", "alpha"),
        variant("b_one", "beta"),
        variant("b_two", "beta"),
    ];
    want.sort();
    assert_eq!(keys, want);
}

#[test]
fn a_missing_or_stale_key_is_named() {
    let keys = vec![
        k("", "cluster"),
        Key {
            variant: Some(("type".into(), "dns".into())),
            ..k("cluster.check", "qname")
        },
        k("cluster", "lease_ttl"),
        Key {
            values: vec!["manual".into(), "auto".into()],
            ..k("cluster", "failback")
        },
        Key {
            variant: Some(("type".into(), "http".into())),
            ..k("cluster.check", "url")
        },
    ];
    let doc = "## `[cluster]`\n\n| key | type |\n|---|---|\n\
               | `failback` | `\"manual\"` |\n| `lease` | duration |\n\
               ### `[cluster.check]` with `type = \"http\"`\n| `url` | string |\n";
    assert_eq!(
        doc_problems(&keys, doc),
        [
            "docs/configuration.md does not document [cluster.check] (type = \"dns\") qname",
            "docs/configuration.md does not document [cluster] lease_ttl",
            "docs/configuration.md: [cluster] failback does not list the value \"auto\"",
            "docs/configuration.md documents [cluster] lease, which the config does not accept there",
        ]
    );
}
