//! What can be wrong in a master file: one [`SyntaxError`] per entry, and
//! where it is ([`FileError`]: `file:line: message`, as BIND prints it).

use std::path::PathBuf;

use data_encoding::DecodeError;
use hickory_proto::rr::RecordType;

/// A bad `\X` or `\DDD` escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("`\\{0}` is not a byte")]
    NotAByte(u16),
    #[error("a lone `\\` at the end")]
    LoneBackslash,
}

/// Why a name in presentation form is not a name.
#[derive(Debug, thiserror::Error)]
pub enum NameProblem {
    #[error(transparent)]
    Escape(#[from] EscapeError),
    #[error("empty label")]
    EmptyLabel,
    #[error("a label of {0} octets (63 at most)")]
    LongLabel(usize),
    #[error(transparent)]
    Invalid(Box<hickory_proto::ProtoError>),
}

impl From<hickory_proto::ProtoError> for NameProblem {
    fn from(e: hickory_proto::ProtoError) -> NameProblem {
        NameProblem::Invalid(Box::new(e))
    }
}

/// Unbalanced text the lexer cannot split into entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LexProblem {
    #[error("`)` without `(`")]
    CloseWithoutOpen,
    #[error("quoted string not closed")]
    OpenQuote,
    #[error("`(` not closed")]
    OpenParen,
}

/// A `$GENERATE` line BIND would not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// The step, start, stop, offset or width is not a number.
    #[error("bad $GENERATE {0}")]
    BadNumber(&'static str),
    #[error("$GENERATE range is start-stop")]
    NotARange,
    #[error("$GENERATE range is empty or too large (65536 records at most)")]
    RangeSize,
    #[error("$GENERATE: `${{` not closed")]
    OpenBrace,
    #[error("$GENERATE base `{0}` is not supported (d, o, x, X, n, N)")]
    Base(String),
}

/// Why one entry (a record or a directive) of a master file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SyntaxError {
    #[error(transparent)]
    Lex(#[from] LexProblem),
    #[error("the first record has no owner name")]
    NoOwner,
    /// A field the record or directive needs is not there.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A directive without its argument (`$TTL needs a value`).
    #[error("{directive} needs {what}")]
    DirectiveArgument {
        directive: &'static str,
        what: &'static str,
    },
    #[error("unknown directive {0}")]
    UnknownDirective(String),
    #[error("$INCLUDE nested more than {0} deep")]
    IncludeDepth(usize),
    #[error("$INCLUDE {}: {source}", path.display())]
    Include {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("`{0}` is not a TTL")]
    Ttl(String),
    #[error("no TTL: give one or a $TTL")]
    NoTtl,
    #[error("unknown type `{0}`")]
    UnknownType(String),
    /// The RDATA of a record of this type.
    #[error("{rtype}: {source}")]
    Rdata {
        rtype: RecordType,
        source: Box<SyntaxError>,
    },
    #[error("RDATA longer than 65535 octets")]
    RdataTooLong,
    #[error("type {0} cannot be written in presentation form here; use the generic form `\\# LENGTH HEX` (RFC 3597)")]
    NoPresentationForm(RecordType),
    #[error("\\# says {said} octets but {found} follow")]
    GenericLength { said: usize, found: usize },
    #[error("unexpected `{0}` after the record data")]
    Trailing(String),
    #[error(transparent)]
    Escape(#[from] EscapeError),
    #[error("`{text}`: {problem}")]
    Name { text: String, problem: NameProblem },
    #[error("{what} `{text}` is not a valid number")]
    NotANumber { what: &'static str, text: String },
    #[error("{what} `{text}` is not a valid time")]
    NotATime { what: &'static str, text: String },
    /// A value of a known kind that does not parse (`bad gateway `x``).
    #[error("bad {what} `{text}`")]
    Bad { what: &'static str, text: String },
    /// A mnemonic this parser does not know (`unknown algorithm `x``).
    #[error("unknown {what} `{text}`")]
    Unknown { what: &'static str, text: String },
    #[error("a character string of {0} octets (255 at most)")]
    StringTooLong(usize),
    #[error("bad hex `{text}`: {source}")]
    Hex { text: String, source: DecodeError },
    #[error("bad base64: {0}")]
    Base64(DecodeError),
    #[error("bad base32hex `{text}`: {source}")]
    Base32Hex { text: String, source: DecodeError },
    #[error("TXT needs at least one string")]
    NoString,
    #[error("unknown type `{0}` in the bit map")]
    BitmapType(String),
    #[error("NXT bit maps hold types below 128")]
    NxtType,
    #[error("unknown gateway type {0}")]
    GatewayType(u8),
    #[error("`{text}`: {pairs} hex pairs separated by `-`")]
    Eui { text: String, pairs: usize },
    #[error("`{0}`: four 16-bit hex groups separated by `:`")]
    Locator(String),
    #[error("LOC: bad `{0}`")]
    LocValue(String),
    #[error("LOC: missing {0}")]
    LocMissing(&'static str),
    #[error("LOC: too many fields")]
    LocTooMany,
    #[error("parameter `{0}` given twice")]
    SvcTwice(String),
    #[error("SvcParam key{0} needs a value")]
    SvcNeedsValue(u16),
    #[error("SvcParam key{0} takes no value")]
    SvcTakesNoValue(u16),
    #[error("an alpn id is 1 to 255 octets")]
    AlpnLength,
    #[error("port is a number")]
    SvcPort,
    /// A part of an APL item (`bad prefix in `1:x/y``).
    #[error("bad {what} in `{item}`")]
    AplPart { what: &'static str, item: String },
    #[error("unknown APL family in `{0}`")]
    AplFamily(String),
}

impl SyntaxError {
    pub(super) fn name(text: &str, problem: impl Into<NameProblem>) -> SyntaxError {
        SyntaxError::Name {
            text: text.to_string(),
            problem: problem.into(),
        }
    }
}

/// One problem in a master file, where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {error}")]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub error: SyntaxError,
}

/// Every problem of a file, one per line, as the parser reports them.
pub fn lines(errors: &[FileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
