//! A small scanner for the top-level shape of a RON descriptor.
//!
//! RON's deserializer reports one position per error and none per value, so the
//! descriptor finds its own structure: this module splits the text into tokens
//! (understanding `//` and nested `/* */` comments, strings with escapes, raw strings
//! and character literals), checks that `()`, `[]` and `{}` nest, and reads the
//! `Name(key: value, ...)` shapes the descriptor is made of, keeping byte offsets so
//! every problem can be reported at its line and column. The values themselves are
//! left to RON.
//!
//! Nothing here panics, whatever the input (a property test says so).

use std::ops::Range;

/// A problem in the shape of the text, at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScanError {
    pub offset: usize,
    pub message: String,
}

impl ScanError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        ScanError { offset, message: message.into() }
    }
}

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An identifier (`Stack`, `mtu`, `true`, `r#type`).
    Ident,
    /// A string literal, plain or raw.
    Str,
    /// A character literal.
    Char,
    /// `(`, `[` or `{`.
    Open(u8),
    /// `)`, `]` or `}`.
    Close(u8),
    Comma,
    Colon,
    /// Anything else: numbers, signs, stray punctuation.
    Other,
}

/// One token: its kind and byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
}

/// Line and column (both from 1, the column counted in characters) of byte offsets.
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.bytes().enumerate().filter(|b| b.1 == b'\n').map(|b| b.0 + 1));
        Lines { text, starts }
    }

    /// Line and column of byte `offset` (clamped to the text).
    pub fn pos(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let col = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Byte offset of a 1-based line and a 1-based *byte* column (RON's positions),
    /// clamped to the text.
    pub fn offset_of_byte_pos(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let end = self.starts.get(line).copied().unwrap_or(self.text.len());
        (start + col.saturating_sub(1)).min(end)
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_special(c: u8) -> bool {
    matches!(c, b'(' | b')' | b'[' | b']' | b'{' | b'}' | b',' | b':' | b'"' | b'\'')
}

/// Whether the byte at `i` ends a run of "other" characters (numbers, signs).
fn ends_other(b: &[u8], i: usize) -> bool {
    b[i].is_ascii_whitespace()
        || is_special(b[i])
        || (b[i] == b'/' && matches!(b.get(i + 1), Some(b'/' | b'*')))
}

fn closer(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    }
}

/// Splits `text` into tokens, skipping whitespace and comments, and checks that
/// brackets nest.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ScanError> {
    let b = text.as_bytes();
    let lines = Lines::new(text);
    let mut toks = Vec::new();
    let mut open: Vec<(u8, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                loop {
                    if i + 1 >= b.len() {
                        return Err(ScanError::new(start, "comment `/*` is never closed"));
                    }
                    if b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'"' => {
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(ScanError::new(start, "string is never closed")),
                        Some(b'\\') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                Tok::Str
            }
            b'r' if matches!(b.get(i + 1), Some(b'"')) || raw_hashes_then_quote(b, i + 1) => {
                let mut hashes = 0;
                i += 1;
                while b.get(i) == Some(&b'#') {
                    hashes += 1;
                    i += 1;
                }
                i += 1; // the opening quote
                loop {
                    match b.get(i) {
                        None => return Err(ScanError::new(start, "raw string is never closed")),
                        Some(b'"')
                            if b.len() - (i + 1) >= hashes
                                && b[i + 1..i + 1 + hashes].iter().all(|&h| h == b'#') =>
                        {
                            i += 1 + hashes;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                Tok::Str
            }
            b'\'' => {
                i += 1;
                if b.get(i) == Some(&b'\\') {
                    i += 2;
                } else {
                    // One character, which may take several bytes.
                    i += text.get(i..).and_then(|s| s.chars().next()).map_or(1, char::len_utf8);
                }
                while i < b.len() && b[i] != b'\'' && b[i] != b'\n' {
                    i += 1;
                }
                if b.get(i) != Some(&b'\'') {
                    return Err(ScanError::new(start, "character literal is never closed"));
                }
                i += 1;
                Tok::Char
            }
            b'(' | b'[' | b'{' => {
                open.push((c, start));
                i += 1;
                Tok::Open(c)
            }
            b')' | b']' | b'}' => {
                match open.pop() {
                    None => {
                        return Err(ScanError::new(start, format!("unmatched `{}`", c as char)));
                    }
                    Some((o, at)) if closer(o) != c => {
                        let (l, col) = lines.pos(at);
                        return Err(ScanError::new(
                            start,
                            format!(
                                "`{}` does not close `{}` opened at {l}:{col}",
                                c as char, o as char
                            ),
                        ));
                    }
                    Some(_) => {}
                }
                i += 1;
                Tok::Close(c)
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b'r' if b.get(i + 1) == Some(&b'#')
                && b.get(i + 2).is_some_and(|&c| is_ident_start(c)) =>
            {
                i += 2;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                Tok::Ident
            }
            _ if is_ident_start(c) => {
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                Tok::Ident
            }
            _ => {
                i += 1;
                while i < b.len() && !ends_other(b, i) {
                    i += 1;
                }
                Tok::Other
            }
        };
        // Never leave a token ending inside a multi-byte character.
        while i < b.len() && !text.is_char_boundary(i) {
            i += 1;
        }
        toks.push(Token { kind, start, end: i.min(b.len()) });
    }
    if let Some(&(o, at)) = open.last() {
        return Err(ScanError::new(at, format!("`{}` is never closed", o as char)));
    }
    Ok(toks)
}

fn raw_hashes_then_quote(b: &[u8], mut i: usize) -> bool {
    let mut n = 0;
    while b.get(i) == Some(&b'#') {
        i += 1;
        n += 1;
    }
    n > 0 && b.get(i) == Some(&b'"')
}

/// `key: value` inside a struct-like `( ... )`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// The key's byte range.
    pub key: Range<usize>,
    /// The value's byte range (from its first token to the end of its last).
    pub value: Range<usize>,
    /// The value's tokens, as indices into the token list.
    pub toks: Range<usize>,
}

/// A `Name(...)` or `(...)`: the optional name, and the byte range of the
/// parenthesised part, brackets included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub name: Option<Range<usize>>,
    pub parens: Option<Range<usize>>,
    /// Token index of the opening `(`, if any.
    pub open: Option<usize>,
}

/// Index of the token closing the bracket opened at `toks[open]` (brackets are known
/// to nest once [`tokenize`] succeeded).
pub(crate) fn matching(toks: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    toks.len().saturating_sub(1)
}

/// Reads `Ident`, `Ident( ... )` or `( ... )` at `toks[at]`, whose extent must be
/// exactly the tokens `at..end`.
pub(crate) fn call(toks: &[Token], at: usize, end: usize, what: &str) -> Result<Call, ScanError> {
    let offset = |i: usize| toks.get(i).map_or(toks.last().map_or(0, |t| t.end), |t| t.start);
    let mut i = at;
    let mut name = None;
    if i < end && toks[i].kind == Tok::Ident {
        name = Some(toks[i].start..toks[i].end);
        i += 1;
    }
    let mut parens = None;
    let mut open = None;
    if i < end && toks[i].kind == Tok::Open(b'(') {
        let close = matching(toks, i);
        parens = Some(toks[i].start..toks[close].end);
        open = Some(i);
        i = close + 1;
    }
    if name.is_none() && parens.is_none() {
        return Err(ScanError::new(offset(at), format!("expected {what}")));
    }
    if i < end {
        return Err(ScanError::new(offset(i), "expected `,` before this"));
    }
    Ok(Call { name, parens, open })
}

/// The fields of the struct-like whose `(` is `toks[open]`.
pub(crate) fn fields(toks: &[Token], open: usize) -> Result<Vec<Field>, ScanError> {
    let close = matching(toks, open);
    let mut out = Vec::new();
    let mut i = open + 1;
    while i < close {
        let key = toks[i];
        if key.kind != Tok::Ident {
            return Err(ScanError::new(key.start, "expected a field name"));
        }
        if toks.get(i + 1).map(|t| t.kind) != Some(Tok::Colon) || i + 1 >= close {
            return Err(ScanError::new(key.end, "expected `:` after the field name"));
        }
        let first = i + 2;
        let mut j = first;
        while j < close && toks[j].kind != Tok::Comma {
            match toks[j].kind {
                Tok::Open(_) => j = matching(toks, j),
                // `a: 1 b: 2`: the next field began without a comma.
                Tok::Colon if j > first + 1 && toks[j - 1].kind == Tok::Ident => {
                    let next = toks[j - 1];
                    return Err(ScanError::new(next.start, "expected `,` before this field"));
                }
                _ => {}
            }
            j += 1;
        }
        let j = j.min(close);
        if j == first {
            return Err(ScanError::new(toks[i + 1].end, "expected a value after `:`"));
        }
        out.push(Field {
            key: key.start..key.end,
            value: toks[first].start..toks[j - 1].end,
            toks: first..j,
        });
        i = if j < close { j + 1 } else { j };
    }
    Ok(out)
}

/// The entries of the list whose `[` is `toks[open]`: token ranges between commas
/// (a trailing comma is allowed; an empty entry is an error).
pub(crate) fn entries(toks: &[Token], open: usize) -> Result<Vec<Range<usize>>, ScanError> {
    let close = matching(toks, open);
    let mut out = Vec::new();
    let mut i = open + 1;
    while i < close {
        let first = i;
        let mut j = i;
        while j < close && toks[j].kind != Tok::Comma {
            if let Tok::Open(_) = toks[j].kind {
                j = matching(toks, j);
            }
            j += 1;
        }
        let j = j.min(close);
        if j == first {
            return Err(ScanError::new(toks[first].start, "expected an entry before `,`"));
        }
        out.push(first..j);
        i = if j < close { j + 1 } else { j };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn kinds(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().iter().map(|t| t.kind).collect()
    }

    #[test]
    fn comments_strings_and_chars_hide_brackets() {
        let text = "( // ) \n /* ( /* ] */ */ \"a)\\\"]\" r#\"x\"(\"# ')' '\\'' )";
        assert_eq!(
            kinds(text),
            vec![Tok::Open(b'('), Tok::Str, Tok::Str, Tok::Char, Tok::Char, Tok::Close(b')')]
        );
    }

    #[test]
    fn unbalanced_brackets_are_reported_where_they_are() {
        assert_eq!(
            tokenize("(\n  ]").unwrap_err(),
            ScanError::new(4, "`]` does not close `(` opened at 1:1")
        );
        assert_eq!(tokenize("a ( [ ]").unwrap_err(), ScanError::new(2, "`(` is never closed"));
        assert_eq!(tokenize(" )").unwrap_err(), ScanError::new(1, "unmatched `)`"));
        assert_eq!(tokenize("x \"abc").unwrap_err(), ScanError::new(2, "string is never closed"));
        assert_eq!(
            tokenize("/* /* */").unwrap_err(),
            ScanError::new(0, "comment `/*` is never closed")
        );
    }

    #[test]
    fn fields_and_entries_split_at_top_level_commas() {
        let text = "(a: [1, 2], b: X(c: 3),)";
        let toks = tokenize(text).unwrap();
        let f = fields(&toks, 0).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(&text[f[0].key.clone()], "a");
        assert_eq!(&text[f[0].value.clone()], "[1, 2]");
        assert_eq!(&text[f[1].value.clone()], "X(c: 3)");
        let e = entries(&toks, f[0].toks.start).unwrap();
        assert_eq!(e.len(), 2);
        let toks = tokenize("(a: 1\n b: 2)").unwrap();
        assert_eq!(
            fields(&toks, 0).unwrap_err(),
            ScanError::new(7, "expected `,` before this field")
        );
    }

    #[test]
    fn columns_count_characters() {
        let l = Lines::new("ab\né(x");
        assert_eq!(l.pos(0), (1, 1));
        assert_eq!(l.pos(3), (2, 1));
        assert_eq!(l.pos(5), (2, 2));
        assert_eq!(l.offset_of_byte_pos(2, 3), 5);
    }

    quickcheck! {
        fn scanner_never_panics(text: String) -> bool {
            if let Ok(toks) = tokenize(&text) {
                for (i, t) in toks.iter().enumerate() {
                    assert!(t.start < t.end && t.end <= text.len());
                    assert!(text.is_char_boundary(t.start) && text.is_char_boundary(t.end));
                    if let Tok::Open(b'(') = t.kind {
                        let _ = fields(&toks, i);
                    }
                    if t.kind == Tok::Open(b'[') {
                        let _ = entries(&toks, i);
                    }
                    let _ = call(&toks, i, toks.len(), "x");
                }
            }
            let l = Lines::new(&text);
            for o in 0..text.len() + 2 {
                let _ = l.pos(o);
            }
            true
        }
    }
}
