//! The pieces every RDATA form is made of: a cursor over the tokens,
//! numbers, names, character strings, hex and base64.

use std::str::FromStr;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use hickory_proto::rr::Name;

use super::lexer::{unescape, Token};
use super::names::{name, name_wire};

use super::error::SyntaxError;

type R<T> = Result<T, SyntaxError>;

/// A cursor over a record's RDATA tokens.
pub struct Fields<'a> {
    pub(super) toks: &'a [Token<'a>],
    pos: usize,
    origin: &'a Name,
}

impl<'a> Fields<'a> {
    pub fn new(toks: &'a [Token<'a>], origin: &'a Name) -> Self {
        Fields {
            toks,
            pos: 0,
            origin,
        }
    }
    pub(super) fn next(&mut self, what: &'static str) -> R<&'a Token<'a>> {
        let t = self.toks.get(self.pos).ok_or(SyntaxError::Missing(what))?;
        self.pos += 1;
        Ok(t)
    }
    pub(super) fn text(&mut self, what: &'static str) -> R<&'a str> {
        Ok(&self.next(what)?.text)
    }
    pub(super) fn rest(&mut self) -> &'a [Token<'a>] {
        let r = &self.toks[self.pos..];
        self.pos = self.toks.len();
        r
    }
    pub(super) fn done(&self) -> R<()> {
        match self.toks.get(self.pos) {
            None => Ok(()),
            Some(t) => Err(SyntaxError::Trailing(t.text.to_string())),
        }
    }
    pub(super) fn num<T: FromStr>(&mut self, what: &'static str) -> R<T> {
        let t = self.text(what)?;
        t.parse().map_err(|_| SyntaxError::NotANumber {
            what,
            text: t.to_string(),
        })
    }
    pub(super) fn name(&mut self, what: &'static str, out: &mut Vec<u8>) -> R<()> {
        let t = self.text(what)?;
        name_wire(&name(t, self.origin)?, out);
        Ok(())
    }
    pub(super) fn string(&mut self, what: &'static str, out: &mut Vec<u8>) -> R<()> {
        let t = self.next(what)?;
        char_string(&t.text, out)
    }
    /// The remaining tokens joined (base64/hex may be split by spaces).
    pub(super) fn joined(&mut self) -> String {
        self.rest().iter().map(|t| t.text.as_ref()).collect()
    }
}

pub fn char_string(s: &str, out: &mut Vec<u8>) -> R<()> {
    let b = unescape(s)?;
    if b.len() > 255 {
        return Err(SyntaxError::StringTooLong(b.len()));
    }
    out.push(b.len() as u8);
    out.extend_from_slice(&b);
    Ok(())
}

pub fn hex(s: &str) -> R<Vec<u8>> {
    if s == "-" {
        return Ok(Vec::new());
    }
    HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .map_err(|source| SyntaxError::Hex {
            text: s.to_string(),
            source,
        })
}

pub fn b64(s: &str) -> R<Vec<u8>> {
    BASE64.decode(s.as_bytes()).map_err(SyntaxError::Base64)
}
