//! Master-file lexing (RFC 1035 5.1): logical entries out of lines.
//!
//! An entry is the tokens of one record or directive, whatever the line
//! breaks inside parentheses. Comments (`;`) end at the line's end outside
//! quotes. Quoted strings keep their escapes (decoded later, by the field
//! that knows whether it is a name or a character string); the entry
//! remembers whether its line began with blank space (the owner is then the
//! previous one).

/// One token as written: a slice of the file's text (escapes kept), or
/// text made by `$GENERATE`. Borrowed, so that a million-record file does
/// not copy each of its four million tokens into a `String` of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: Cow<'a, str>,
    pub quoted: bool,
}

/// One record or directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// 1-based line where the entry starts.
    pub line: usize,
    /// The line began with white space: no owner given.
    pub blank_owner: bool,
    pub tokens: Vec<Token<'a>>,
}

impl Entry<'_> {
    /// A directive (`$ORIGIN`, `$TTL`, `$INCLUDE`, `$GENERATE`, …): an
    /// unquoted first field starting with `$` on a line that names one.
    pub fn is_directive(&self) -> bool {
        !self.blank_owner && !self.tokens[0].quoted && self.tokens[0].text.starts_with('$')
    }
}

use std::borrow::Cow;

use super::error::{EscapeError, LexProblem};

/// A lexing error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub problem: LexProblem,
}

/// Split master-file text into entries.
pub fn entries(text: &str) -> Result<Vec<Entry<'_>>, LexError> {
    let mut out = Vec::new();
    let mut cur: Option<Entry> = None;
    let mut depth = 0usize;
    let mut paren_line = 0usize;
    let bytes = text.as_bytes();
    let mut line = 1usize;
    let mut i = 0usize;
    let mut at_line_start = true;
    while i < bytes.len() {
        let c = bytes[i];
        if at_line_start {
            at_line_start = false;
            if depth == 0 {
                if let Some(e) = cur.take() {
                    if !e.tokens.is_empty() {
                        out.push(e);
                    }
                }
                cur = Some(Entry {
                    line,
                    blank_owner: c == b' ' || c == b'\t',
                    tokens: Vec::new(),
                });
            }
        }
        match c {
            b'\n' => {
                line += 1;
                at_line_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                if depth == 0 {
                    paren_line = line;
                }
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return Err(LexError {
                        line,
                        problem: LexProblem::CloseWithoutOpen,
                    });
                }
                depth -= 1;
                i += 1;
            }
            b'"' => {
                let (s, next) = quoted(text, i + 1, &mut line)?;
                i = next;
                cur.as_mut().expect("an entry").tokens.push(Token {
                    text: Cow::Borrowed(s),
                    quoted: true,
                });
            }
            _ => {
                let (s, next) = word(text, i);
                i = next;
                cur.as_mut().expect("an entry").tokens.push(Token {
                    text: Cow::Borrowed(s),
                    quoted: false,
                });
            }
        }
    }
    if depth > 0 {
        return Err(LexError {
            line: paren_line,
            problem: LexProblem::OpenParen,
        });
    }
    if let Some(e) = cur.take() {
        if !e.tokens.is_empty() {
            out.push(e);
        }
    }
    Ok(out)
}

/// A quoted string whose text starts at `i` (after the `"`): its text,
/// escapes kept (the slice between the quotes), and where lexing goes on.
/// Newlines inside it count in `line`.
fn quoted<'t>(text: &'t str, start: usize, line: &mut usize) -> Result<(&'t str, usize), LexError> {
    let bytes = text.as_bytes();
    let start_line = *line;
    let mut i = start;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(LexError {
                line: start_line,
                problem: LexProblem::OpenQuote,
            });
        };
        match b {
            b'"' => return Ok((&text[start..i], i + 1)),
            b'\\' => {
                if let Some(&n) = bytes.get(i + 1) {
                    if n == b'\n' {
                        *line += 1;
                    }
                    i += char_len(text, i + 1) + 1;
                } else {
                    i += 1;
                }
            }
            b'\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += char_len(text, i),
        }
    }
}

/// A bare word starting at `start`, escapes kept (a slice of the text),
/// and where it ends.
fn word(text: &str, start: usize) -> (&str, usize) {
    let bytes = text.as_bytes();
    let mut i = start;
    while let Some(&b) = bytes.get(i) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
            b'\\' => {
                if bytes.get(i + 1).is_some() {
                    i += char_len(text, i + 1) + 1;
                } else {
                    i += 1;
                }
            }
            _ => i += char_len(text, i),
        }
    }
    (&text[start..i], i)
}

fn char_len(text: &str, i: usize) -> usize {
    text[i..].chars().next().map_or(1, char::len_utf8)
}

/// Decode a character string's escapes (`\X` is X, `\DDD` is the byte DDD).
pub fn unescape(s: &str) -> Result<Vec<u8>, EscapeError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
                let v: u16 = std::str::from_utf8(&b[i + 1..i + 4])
                    .unwrap()
                    .parse()
                    .unwrap();
                if v > 255 {
                    return Err(EscapeError::NotAByte(v));
                }
                out.push(v as u8);
                i += 4;
            } else if i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 2;
            } else {
                return Err(EscapeError::LoneBackslash);
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'e>(e: &'e Entry) -> Vec<&'e str> {
        e.tokens.iter().map(|t| &*t.text).collect()
    }

    #[test]
    fn parentheses_join_lines_and_comments_end_at_the_line() {
        let e = entries(
            "@ IN SOA ns1 host ( 1 ; serial\n 2 3\n 4 5 )\n  IN NS ns1 ; c\nwww A 1.2.3.4\n",
        )
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(
            texts(&e[0]),
            ["@", "IN", "SOA", "ns1", "host", "1", "2", "3", "4", "5"]
        );
        assert_eq!(e[0].line, 1);
        assert!(e[1].blank_owner);
        assert_eq!(e[1].line, 4);
        assert_eq!(texts(&e[2]), ["www", "A", "1.2.3.4"]);
    }

    #[test]
    fn quotes_keep_spaces_and_escapes() {
        let e = entries("t TXT \"a b\" \"c\\\"d\" e\\ f ( \"x;y\"\n \"z\" )\n").unwrap();
        assert_eq!(
            texts(&e[0]),
            ["t", "TXT", "a b", "c\\\"d", "e\\ f", "x;y", "z"]
        );
        assert!(e[0].tokens[2].quoted && !e[0].tokens[4].quoted);
        assert_eq!(unescape("c\\\"d\\065\\\\").unwrap(), b"c\"dA\\");
    }

    #[test]
    fn unbalanced_input_is_an_error_with_its_line() {
        assert_eq!(entries("a A 1.2.3.4\nb TXT ( \"x\"\n").unwrap_err().line, 2);
        assert_eq!(entries("a TXT \"x\n").unwrap_err().line, 1);
        assert_eq!(entries("a A )\n").unwrap_err().line, 1);
    }
}
