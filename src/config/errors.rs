//! Config errors that name the file, the line and the field.
//!
//! toml/serde report a byte span and a message that quotes either the field
//! (missing/unknown/duplicate) or the value (wrong type); these helpers turn
//! that into the field an operator has to fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// A config error: which file, which line, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    /// Where the error is.
    pub fn place(&self) -> Place {
        Place {
            file: self.file.clone(),
            line: self.line,
            field: self.field.clone(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where in the config file a value is: for errors found in what a value
/// names (a zone file, a key, a GeoIP database), which carry their own
/// typed cause.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub field: String,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        Ok(())
    }
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The field a toml/serde error is about. "missing/unknown/duplicate field"
/// messages quote the field name in backticks ("missing field `url`"); the
/// others (wrong type or value) quote the *value* ("invalid type: integer `5`"),
/// so there the key is read from the text before the error's span.
pub(super) fn field_from_toml_error(
    msg: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
) -> String {
    let msg = msg.trim_start();
    if ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|p| msg.starts_with(p))
    {
        let mut parts = msg.split('`');
        parts.next();
        return parts.next().unwrap_or("").to_string();
    }
    let Some(span) = span else {
        return String::new();
    };
    let key = key_before(text.get(..span.start).unwrap_or(""));
    // A flattened table (`check = { ... }`) reports the whole table's span:
    // find the offending value inside it to name the inner key instead.
    let inner = text.get(span).unwrap_or("");
    if inner.starts_with('{') {
        if let Some(inner_key) = quoted_value(msg).and_then(|v| key_of_value(inner, &v)) {
            return inner_key;
        }
    }
    key
}

/// The key of a `key = value` whose value starts where `before` ends.
fn key_before(before: &str) -> String {
    let Some(key) = before.trim_end().strip_suffix('=') else {
        // Not right after `=`: inside a list; the list's key is the last one.
        return before
            .rfind('=')
            .map_or(String::new(), |eq| key_before(&before[..=eq]));
    };
    let key = key.trim_end();
    // After the last character that cannot be in a key (which may take
    // more than one byte: `i + 1` panicked inside one, found by the
    // `config` fuzz target).
    let start = key
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    key[start..].to_string()
}

/// The value serde quotes in a message: numbers in backticks, strings in quotes.
fn quoted_value(msg: &str) -> Option<String> {
    if let Some(i) = msg.find("string \"") {
        let rest = &msg[i + 7..];
        let end = rest[1..].find('"')?;
        return Some(rest[..end + 2].to_string());
    }
    let mut parts = msg.split('`');
    parts.next();
    parts.next().map(str::to_string)
}

/// In inline-table text, the key whose value is exactly `value`.
fn key_of_value(table: &str, value: &str) -> Option<String> {
    table.match_indices(value).find_map(|(i, _)| {
        let after = table[i + value.len()..].chars().next();
        let ends = after.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'));
        let before = &table[..i];
        (ends && before.trim_end().ends_with('='))
            .then(|| key_before(before))
            .filter(|k| !k.is_empty())
    })
}

/// A config file's text, or an error naming it.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })
}

/// `text` as `T`, or an error naming the file, line and field.
pub(super) fn from_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message();
        ConfigError {
            file: path.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)),
            field: field_from_toml_error(msg, text, e.span()),
            message: toml_message(msg, text, e.span()),
        }
    })
}

/// toml's message on one line; when it gives none, what is at the place it
/// points to. (toml 0.8 reports a control character in a comment with an
/// empty message, which left the operator with `file:line:` and nothing
/// else; found by the `config` fuzz target.)
fn toml_message(msg: &str, text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let msg = msg.trim();
    if !msg.is_empty() {
        return msg.replace('\n', "; ");
    }
    match span
        .and_then(|s| text.get(s.start..))
        .and_then(|t| t.chars().next())
    {
        Some(c) if c.is_control() => format!(
            "control character U+{:04X} is not allowed here (not even in a comment)",
            c as u32
        ),
        Some(c) => format!("unexpected `{c}`"),
        None => "unexpected end of the file".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key before `=` when a multi-byte character precedes it
    /// (regression: a panic slicing inside that character;
    /// fuzz/corpus/config/regress-key-after-multibyte-char).
    #[test]
    fn a_key_after_a_multibyte_character() {
        assert_eq!(key_before("# a\n\u{584}listen ="), "listen");
        assert_eq!(key_before("\u{584}\u{584}listen=[\"a\", "), "listen");
    }

    /// Every toml error has a message (regression: a control character in
    /// a comment gave none; fuzz/corpus/config/regress-error-without-message).
    #[test]
    fn a_control_character_in_a_comment_is_named() {
        let e = from_toml::<toml::Table>("a = 1\n# a\u{8}b\n", Path::new("x.toml")).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(
            e.message,
            "control character U+0008 is not allowed here (not even in a comment)"
        );
    }
}
