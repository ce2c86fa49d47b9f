//! etcdctl's txn input syntax (`ctlv3/command/txn_command.go`), parsed without IO beyond
//! the reader it is given.
//!
//! The input is three blocks, each ended by a blank line: compares, success requests,
//! failure requests. A compare is `target("key") op "value"` with target `ver`/`version`,
//! `c`/`create`, `m`/`mod`, `val`/`value` or `lease` (hexadecimal ID), and op `=`, `!=`,
//! `>` or `<`; key and value are Go double-quoted strings (backquoted raw strings also
//! work). A request is a `put`, `get` or `del` command line taking the same flags as the
//! top-level command, its words bare, `'single-quoted'` or `"double-quoted"` with Go
//! escapes (`\n`, `\x00`, `\u00e9`...).
//!
//! Differences from etcdctl, each to refuse rather than guess: end of input also ends the
//! current block (etcdctl fails with "EOF"); text after a compare's value, an unterminated
//! quote, an unknown operator and a `put` without a value are errors (etcdctl ignores the
//! text, splits the quote, panics, or reads the rest of stdin as the value).

use crate::ctl::args::{TxnOpLine, one_line_error};
use crate::ctl::error::CtlError;
use crate::ctl::limits::TXN_INPUT_BYTES_MAX;
use crate::ctl::requests::{delete_request, parse_lease_id, put_request, range_request};
use atoll_proto::{Compare, CompareResult, CompareTarget, RequestOp, TxnRequest};
use clap::Parser;
use std::ffi::OsString;
use std::io::{self, BufRead, Read};

/// The prompt printed before the compares block in interactive mode.
pub const PROMPT_COMPARES: &str = "compares:";
/// The prompt printed before the success block in interactive mode.
pub const PROMPT_SUCCESS: &str = "success requests (get, put, del):";
/// The prompt printed before the failure block in interactive mode.
pub const PROMPT_FAILURE: &str = "failure requests (get, put, del):";

/// Why a txn could not be read. The texts start as etcdctl's do.
#[derive(Debug, thiserror::Error)]
pub enum TxnSyntaxError {
    /// A compare line does not have the `target("key") op "value"` shape.
    #[error("malformed comparison: {line} ({reason})")]
    MalformedComparison {
        /// The offending line.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A compare's value does not fit its target (e.g. `mod("k") > "x"`).
    #[error("invalid txn compare request: {line} ({reason})")]
    InvalidCompareValue {
        /// The offending line.
        line: String,
        /// What was expected.
        reason: String,
    },
    /// A request line is not a valid put, get or del.
    #[error("invalid txn request: {line} ({reason})")]
    InvalidRequest {
        /// The offending line.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line is not valid UTF-8 (use `"\xNN"` escapes for binary keys and values).
    #[error("txn input line {line_number} is not valid UTF-8; write binary bytes as \"\\xNN\"")]
    NotUtf8 {
        /// 1-based line number.
        line_number: usize,
    },
    /// The input is larger than the limit.
    #[error("txn input exceeds {limit_bytes} bytes")]
    TooLarge {
        /// The limit.
        limit_bytes: u64,
    },
    /// The input could not be read.
    #[error("reading txn input: {source}")]
    Read {
        /// The IO error.
        source: io::Error,
    },
    /// An interactive prompt could not be written.
    #[error("writing txn prompt: {source}")]
    Prompt {
        /// The IO error.
        source: io::Error,
    },
}

/// Reads a whole txn from `input`, calling `prompt` before each block (interactive mode
/// prints the etcdctl prompts; otherwise pass a no-op).
pub fn read_txn(
    input: &mut dyn BufRead,
    prompt: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<TxnRequest, TxnSyntaxError> {
    read_txn_limited(input, prompt, TXN_INPUT_BYTES_MAX)
}

/// [`read_txn`] with an explicit input size limit.
pub fn read_txn_limited(
    input: &mut dyn BufRead,
    prompt: &mut dyn FnMut(&str) -> io::Result<()>,
    limit_bytes: u64,
) -> Result<TxnRequest, TxnSyntaxError> {
    let mut lines = LineReader { input, limit_bytes, bytes_read: 0, line_number: 0 };
    let mut prompt = |text: &str| prompt(text).map_err(|source| TxnSyntaxError::Prompt { source });
    prompt(PROMPT_COMPARES)?;
    let compare = read_block(&mut lines, parse_compare)?;
    prompt(PROMPT_SUCCESS)?;
    let success = read_block(&mut lines, parse_op)?;
    prompt(PROMPT_FAILURE)?;
    let failure = read_block(&mut lines, parse_op)?;
    Ok(TxnRequest { compare, success, failure })
}

/// Parses lines until a blank line or the end of input.
fn read_block<T>(
    lines: &mut LineReader<'_>,
    parse: fn(&str) -> Result<T, TxnSyntaxError>,
) -> Result<Vec<T>, TxnSyntaxError> {
    let mut items = Vec::new();
    while let Some(line) = lines.next_line()? {
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        items.push(parse(line)?);
    }
    Ok(items)
}

struct LineReader<'a> {
    input: &'a mut dyn BufRead,
    limit_bytes: u64,
    bytes_read: u64,
    line_number: usize,
}

impl LineReader<'_> {
    /// The next line without its terminator; `None` at the end of input.
    fn next_line(&mut self) -> Result<Option<String>, TxnSyntaxError> {
        let mut buf = Vec::new();
        let budget = self.limit_bytes.saturating_sub(self.bytes_read).saturating_add(1);
        let read = (&mut *self.input)
            .take(budget)
            .read_until(b'\n', &mut buf)
            .map_err(|source| TxnSyntaxError::Read { source })?;
        if read == 0 {
            return Ok(None);
        }
        self.bytes_read = self.bytes_read.saturating_add(read as u64);
        if self.bytes_read > self.limit_bytes {
            return Err(TxnSyntaxError::TooLarge { limit_bytes: self.limit_bytes });
        }
        self.line_number += 1;
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| TxnSyntaxError::NotUtf8 { line_number: self.line_number })
    }
}

/// Parses one compare line, e.g. `mod("key1") > "0"`.
pub fn parse_compare(line: &str) -> Result<Compare, TxnSyntaxError> {
    let malformed = |reason: &str| TxnSyntaxError::MalformedComparison {
        line: line.to_string(),
        reason: reason.to_string(),
    };
    let Some((target, rest)) = line.split_once('(') else {
        return Err(malformed(r#"expected target("key") op "value""#));
    };
    let (key, rest) = take_quoted(rest.trim_start_matches(is_space))
        .map_err(|e| malformed(&format!("key: {e}")))?;
    let rest = rest.strip_prefix(')').ok_or_else(|| malformed("expected ')' after the key"))?;
    let rest =
        skip_required_space(rest).ok_or_else(|| malformed("expected ' ' before the operator"))?;
    let (op, rest) = rest.split_at(rest.find(is_space).unwrap_or(rest.len()));
    let rest =
        skip_required_space(rest).ok_or_else(|| malformed("expected ' ' after the operator"))?;
    let (value, rest) = take_quoted(rest).map_err(|e| malformed(&format!("value: {e}")))?;
    if !rest.trim().is_empty() {
        return Err(malformed(&format!("unexpected text after the value: {:?}", rest.trim())));
    }
    let result = match op {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => return Err(malformed(&format!("unknown operator {op:?}; use =, !=, > or <"))),
    };
    let target = compare_target(line, target, value)?;
    Ok(Compare { result, target, key, range_end: Vec::new() })
}

/// The compare's target with its operand parsed for that target.
fn compare_target(
    line: &str,
    target: &str,
    value: Vec<u8>,
) -> Result<CompareTarget, TxnSyntaxError> {
    let invalid = |reason: &str| TxnSyntaxError::InvalidCompareValue {
        line: line.to_string(),
        reason: reason.to_string(),
    };
    let text = String::from_utf8(value.clone()).unwrap_or_default();
    let decimal = || text.parse::<i64>().map_err(|_| invalid("expected a decimal integer"));
    Ok(match target {
        "ver" | "version" => CompareTarget::Version(decimal()?),
        "c" | "create" => CompareTarget::Create(decimal()?),
        "m" | "mod" => CompareTarget::Mod(decimal()?),
        "val" | "value" => CompareTarget::Value(value),
        "lease" => CompareTarget::Lease(
            parse_lease_id(&text).map_err(|_| invalid("expected a lease ID in hexadecimal"))?,
        ),
        _ => {
            return Err(TxnSyntaxError::MalformedComparison {
                line: line.to_string(),
                reason: format!("unknown target {target}"),
            });
        }
    })
}

/// Parses one request line, e.g. `put key1 "some value"` or `get --prefix key`.
pub fn parse_op(line: &str) -> Result<RequestOp, TxnSyntaxError> {
    let invalid =
        |reason: String| TxnSyntaxError::InvalidRequest { line: line.to_string(), reason };
    let words = argify(line).map_err(invalid)?;
    if words.len() < 2 {
        return Err(invalid("expected get, put or del followed by a key".to_string()));
    }
    let words: Vec<OsString> = words.into_iter().map(os_string).collect();
    let parsed = TxnOpLine::try_parse_from(words).map_err(|e| invalid(one_line_error(&e)))?;
    let op = match parsed {
        TxnOpLine::Put(args) => put_request(&args, || {
            Err(CtlError::bad_args("a put in a txn needs a value: put <key> <value>"))
        })
        .map(RequestOp::Put),
        TxnOpLine::Get(args) => range_request(&args).map(RequestOp::Range),
        TxnOpLine::Del(args) => delete_request(&args).map(RequestOp::DeleteRange),
    };
    op.map_err(|e| invalid(e.to_string()))
}

/// Splits a request line into words as etcdctl's `argify` does: bare words,
/// `'single-quoted'` (taken literally) and `"double-quoted"` (Go escapes decoded).
pub fn argify(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start_matches(is_space);
    while !rest.is_empty() {
        let (word, after) = if rest.starts_with('"') {
            take_quoted(rest)?
        } else if let Some(body) = rest.strip_prefix('\'') {
            let end = body.find('\'').ok_or("unterminated single-quoted string")?;
            (body.as_bytes()[..end].to_vec(), &body[end + 1..])
        } else {
            let end = rest.find(is_space).unwrap_or(rest.len());
            (rest.as_bytes()[..end].to_vec(), &rest[end..])
        };
        words.push(word);
        rest = after.trim_start_matches(is_space);
    }
    Ok(words)
}

/// Takes a Go-quoted string (`"..."` with escapes, or `` `raw` ``) off the front of `text`
/// (as `fmt.Sscanf("%q")`), returning its bytes and the rest.
fn take_quoted(text: &str) -> Result<(Vec<u8>, &str), String> {
    if let Some(body) = text.strip_prefix('`') {
        let end = body.find('`').ok_or("unterminated raw string")?;
        return Ok((body.as_bytes()[..end].to_vec(), &body[end + 1..]));
    }
    let Some(body) = text.strip_prefix('"') else {
        return Err("expected a double-quoted string".to_string());
    };
    let mut bytes = Vec::new();
    let mut chars = body.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((bytes, &body[index + 1..])),
            '\\' => unescape(&mut chars, &mut bytes)?,
            _ => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Err("unterminated double-quoted string".to_string())
}

/// Decodes one Go escape sequence (after the backslash) into `out` (`strconv.UnquoteChar`).
fn unescape(chars: &mut std::str::CharIndices<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let (_, c) = chars.next().ok_or("unterminated double-quoted string")?;
    let simple = match c {
        'a' => Some(0x07),
        'b' => Some(0x08),
        'f' => Some(0x0c),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(0x0b),
        '\\' => Some(b'\\'),
        '"' => Some(b'"'),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Ok(());
    }
    let mut digits = |count: usize, radix: u32| -> Result<u32, String> {
        let text: String = chars.by_ref().take(count).map(|(_, c)| c).collect();
        if text.chars().count() != count {
            return Err(format!("invalid escape \\{c}{text}"));
        }
        u32::from_str_radix(&text, radix).map_err(|_| format!("invalid escape \\{c}{text}"))
    };
    match c {
        'x' => out.push(digits(2, 16)? as u8),
        '0'..='7' => {
            let rest = digits(2, 8)?;
            let value = (c as u32 - '0' as u32) * 64 + rest;
            out.push(u8::try_from(value).map_err(|_| format!("octal escape \\{c}.. is over 255"))?);
        }
        'u' | 'U' => {
            let code = digits(if c == 'u' { 4 } else { 8 }, 16)?;
            let decoded =
                char::from_u32(code).ok_or(format!("invalid unicode escape {code:#x}"))?;
            out.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes());
        }
        _ => return Err(format!("unknown escape sequence \\{c}")),
    }
    Ok(())
}

/// Skips one or more spaces (Go `Sscanf`'s format space); `None` if there is none and the
/// text does not end here.
fn skip_required_space(text: &str) -> Option<&str> {
    let trimmed = text.trim_start_matches(is_space);
    (trimmed.len() < text.len() || text.is_empty()).then_some(trimmed)
}

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

fn os_string(bytes: Vec<u8>) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(bytes)
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
#[path = "txn_syntax_tests.rs"]
mod tests;
