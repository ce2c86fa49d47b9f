//! Tests of the txn syntax: compares, request lines, quoting, block reading and the error
//! text of each kind of bad input.

use super::*;
use atoll_proto::{DeleteRangeRequest, PutRequest, RangeRequest, SortOrder, SortTarget};

fn must_compare(line: &str) -> Compare {
    match parse_compare(line) {
        Ok(c) => c,
        Err(e) => panic!("parse_compare({line:?}): {e}"),
    }
}

fn must_op(line: &str) -> RequestOp {
    match parse_op(line) {
        Ok(op) => op,
        Err(e) => panic!("parse_op({line:?}): {e}"),
    }
}

fn compare_err(line: &str) -> String {
    parse_compare(line).err().map(|e| e.to_string()).unwrap_or_else(|| "parsed".into())
}

fn op_err(line: &str) -> String {
    parse_op(line).err().map(|e| e.to_string()).unwrap_or_else(|| "parsed".into())
}

fn cmp(result: CompareResult, target: CompareTarget, key: &[u8]) -> Compare {
    Compare { result, target, key: key.to_vec(), range_end: Vec::new() }
}

fn must_read(input: &str) -> TxnRequest {
    match read_txn(&mut input.as_bytes(), &mut |_| Ok(())) {
        Ok(txn) => txn,
        Err(e) => panic!("read_txn({input:?}): {e}"),
    }
}

fn put(key: &[u8], value: &[u8]) -> RequestOp {
    RequestOp::Put(PutRequest { key: key.to_vec(), value: value.to_vec(), ..PutRequest::default() })
}

#[test]
fn compares_of_every_target_and_operator() {
    use CompareResult::*;
    assert_eq!(must_compare(r#"mod("key1") > "0""#), cmp(Greater, CompareTarget::Mod(0), b"key1"));
    assert_eq!(must_compare(r#"m("k") < "12""#), cmp(Less, CompareTarget::Mod(12), b"k"));
    assert_eq!(
        must_compare(r#"val("key1") = "value""#),
        cmp(Equal, CompareTarget::Value(b"value".to_vec()), b"key1")
    );
    assert_eq!(
        must_compare(r#"value("k") != "x y""#),
        cmp(NotEqual, CompareTarget::Value(b"x y".to_vec()), b"k")
    );
    assert_eq!(must_compare(r#"create("k") = "0""#), cmp(Equal, CompareTarget::Create(0), b"k"));
    assert_eq!(must_compare(r#"c("k") > "-1""#), cmp(Greater, CompareTarget::Create(-1), b"k"));
    assert_eq!(
        must_compare(r#"version("k") != "3""#),
        cmp(NotEqual, CompareTarget::Version(3), b"k")
    );
    assert_eq!(must_compare(r#"ver("k") = "1""#), cmp(Equal, CompareTarget::Version(1), b"k"));
    assert_eq!(
        must_compare(r#"lease("k") = "694d77aa9e38260f""#),
        cmp(Equal, CompareTarget::Lease(0x694d77aa9e38260f), b"k")
    );
    assert_eq!(must_compare(r#"lease("k") > "0""#), cmp(Greater, CompareTarget::Lease(0), b"k"));
}

#[test]
fn compare_quoting_follows_go() {
    let c = must_compare(r#"val("a\"b\\c\x00\xff\u00e9") = "line\nbreak\t""#);
    assert_eq!(c.key, b"a\"b\\c\x00\xff\xc3\xa9");
    assert_eq!(c.target, CompareTarget::Value(b"line\nbreak\t".to_vec()));
    let c = must_compare(r#"val( "k") = `raw\n`"#);
    assert_eq!((c.key.as_slice(), c.target), (&b"k"[..], CompareTarget::Value(br"raw\n".to_vec())));
    let c = must_compare("mod(\"k\")   >\t\"5\"");
    assert_eq!(c.target, CompareTarget::Mod(5));
    assert_eq!(must_compare(r#"val("\101\U0001F600") = """#).key, "A😀".as_bytes());
}

#[test]
fn malformed_compares_say_what_is_wrong() {
    let cases = [
        ("mod", r#"malformed comparison: mod (expected target("key") op "value")"#),
        (
            r#"mod(key) > "0""#,
            "malformed comparison: mod(key) > \"0\" (key: expected a double-quoted string)",
        ),
        (
            r#"mod("key > "0""#,
            r#"malformed comparison: mod("key > "0" (expected ')' after the key)"#,
        ),
        (
            r#"mod("k" ) > "0""#,
            r#"malformed comparison: mod("k" ) > "0" (expected ')' after the key)"#,
        ),
        (
            r#"mod("k")>"0""#,
            r#"malformed comparison: mod("k")>"0" (expected ' ' before the operator)"#,
        ),
        (
            r#"mod("k") >"0""#,
            r#"malformed comparison: mod("k") >"0" (value: expected a double-quoted string)"#,
        ),
        (
            r#"mod("k") > 0"#,
            r#"malformed comparison: mod("k") > 0 (value: expected a double-quoted string)"#,
        ),
        (
            r#"mod("k") > "0"#,
            r#"malformed comparison: mod("k") > "0 (value: unterminated double-quoted string)"#,
        ),
        (
            r#"mod("k") >= "0""#,
            r#"malformed comparison: mod("k") >= "0" (unknown operator ">="; use =, !=, > or <)"#,
        ),
        (r#"size("k") > "0""#, r#"malformed comparison: size("k") > "0" (unknown target size)"#),
        (
            r#"mod("k") > "0" junk"#,
            r#"malformed comparison: mod("k") > "0" junk (unexpected text after the value: "junk")"#,
        ),
        (
            r#"val("\q") = "x""#,
            r#"malformed comparison: val("\q") = "x" (key: unknown escape sequence \q)"#,
        ),
        (
            r#"val("\x4") = "x""#,
            r#"malformed comparison: val("\x4") = "x" (key: invalid escape \x4")"#,
        ),
        (
            r#"val("\777") = "x""#,
            r#"malformed comparison: val("\777") = "x" (key: octal escape \7.. is over 255)"#,
        ),
        (
            r#"val("\ud800") = "x""#,
            r#"malformed comparison: val("\ud800") = "x" (key: invalid unicode escape 0xd800)"#,
        ),
        (
            r#"val("k") = "x"#,
            r#"malformed comparison: val("k") = "x (value: unterminated double-quoted string)"#,
        ),
        ("val(`k) = \"x\"", "malformed comparison: val(`k) = \"x\" (key: unterminated raw string)"),
    ];
    for (line, expected) in cases {
        assert_eq!(compare_err(line), expected, "{line}");
    }
}

#[test]
fn compare_values_must_fit_the_target() {
    assert_eq!(
        compare_err(r#"mod("k") > "x""#),
        r#"invalid txn compare request: mod("k") > "x" (expected a decimal integer)"#
    );
    assert_eq!(
        compare_err(r#"version("k") = "99999999999999999999""#),
        r#"invalid txn compare request: version("k") = "99999999999999999999" (expected a decimal integer)"#
    );
    assert_eq!(
        compare_err(r#"lease("k") = "g""#),
        r#"invalid txn compare request: lease("k") = "g" (expected a lease ID in hexadecimal)"#
    );
    assert_eq!(
        compare_err(r#"lease("k") = "ffffffffffffffff""#),
        r#"invalid txn compare request: lease("k") = "ffffffffffffffff" (expected a lease ID in hexadecimal)"#
    );
}

#[test]
fn argify_splits_like_etcdctl() {
    let words = |line: &str| {
        argify(line).map(|w| {
            w.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect::<Vec<_>>()
        })
    };
    assert_eq!(
        words(r#"put key1 "a value""#),
        Ok(vec!["put".into(), "key1".into(), "a value".into()])
    );
    assert_eq!(
        words("put  k   'it''s'"),
        Ok(vec!["put".into(), "k".into(), "it".into(), "s".into()])
    );
    assert_eq!(words(r#"put k "a\tb\"c""#), Ok(vec!["put".into(), "k".into(), "a\tb\"c".into()]));
    assert_eq!(words(r#"put k"x" y"#), Ok(vec!["put".into(), "k\"x\"".into(), "y".into()]));
    assert_eq!(words(r#"put "" ''"#), Ok(vec!["put".into(), String::new(), String::new()]));
    assert_eq!(words(""), Ok(vec![]));
    assert_eq!(words(r#"put k "open"#), Err("unterminated double-quoted string".into()));
    assert_eq!(words("put k 'open"), Err("unterminated single-quoted string".into()));
    assert_eq!(argify(r#"put "\xff" v"#).map(|w| w[1].clone()), Ok(vec![0xff]));
}

#[test]
fn request_lines_reuse_the_command_flags() {
    assert_eq!(must_op("put key1 value1"), put(b"key1", b"value1"));
    assert_eq!(must_op(r#"put key1 "overwrote key1""#), put(b"key1", b"overwrote key1"));
    assert_eq!(must_op(r#"put "k\x00" ''"#), put(b"k\x00", b""));
    assert_eq!(
        must_op("put --prev-kv --lease=1f k v"),
        RequestOp::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 0x1f,
            prev_kv: true,
            ..PutRequest::default()
        })
    );
    assert_eq!(
        must_op("get k"),
        RequestOp::Range(RangeRequest { key: b"k".to_vec(), ..RangeRequest::default() })
    );
    assert_eq!(
        must_op("get a --prefix --limit 2 --sort-by=MODIFY"),
        RequestOp::Range(RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 2,
            sort_order: SortOrder::Ascend,
            sort_target: SortTarget::Mod,
            ..RangeRequest::default()
        })
    );
    assert_eq!(
        must_op("get a c"),
        RequestOp::Range(RangeRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            ..RangeRequest::default()
        })
    );
    assert_eq!(
        must_op("del k --prefix"),
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            prev_kv: false
        })
    );
    assert_eq!(
        must_op("del --from-key a --prev-kv"),
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            prev_kv: true
        })
    );
}

#[test]
fn bad_request_lines_say_why() {
    let cases = [
        ("put", "invalid txn request: put (expected get, put or del followed by a key)"),
        ("delete k", "invalid txn request: delete k (unrecognized subcommand 'delete')"),
        ("put k", "invalid txn request: put k (a put in a txn needs a value: put <key> <value>)"),
        (
            "put k v --bogus",
            "invalid txn request: put k v --bogus (unexpected argument '--bogus' found)",
        ),
        (
            "get k --limit=x",
            "invalid txn request: get k --limit=x (invalid value 'x' for '--limit <LIMIT>': invalid digit found in string)",
        ),
        (
            "get k --prefix --from-key",
            "invalid txn request: get k --prefix --from-key (`--prefix` and `--from-key` cannot be set at the same time, choose one)",
        ),
        (
            "get k --sort-by=SIZE",
            "invalid txn request: get k --sort-by=SIZE (bad sort target SIZE)",
        ),
        (
            "del a b c",
            "invalid txn request: del a b c (del command needs one argument as key and an optional argument as range_end)",
        ),
        (
            "put k v --lease=zz",
            r#"invalid txn request: put k v --lease=zz (bad lease ID (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex)"#,
        ),
        (r#"put k "v"#, r#"invalid txn request: put k "v (unterminated double-quoted string)"#),
    ];
    for (line, expected) in cases {
        assert_eq!(op_err(line), expected, "{line}");
    }
}

#[test]
fn reads_three_blocks() {
    let input = "mod(\"key1\") > \"0\"\nval(\"key2\") = \"v\"\n\nput key1 \"overwrote-key1\"\n\n\
                 put key1 \"created-key1\"\nput key2 \"some extra key\"\n\n";
    let txn = must_read(input);
    assert_eq!(txn.compare.len(), 2);
    assert_eq!(txn.success, [put(b"key1", b"overwrote-key1")]);
    assert_eq!(txn.failure, [put(b"key1", b"created-key1"), put(b"key2", b"some extra key")]);
}

#[test]
fn blank_blocks_lines_with_spaces_and_end_of_input() {
    let txn = must_read("\n\n\n");
    assert_eq!(txn, TxnRequest::default());
    let txn = must_read("  \n\t put k v  \r\n   \n");
    assert!(txn.compare.is_empty() && txn.failure.is_empty());
    assert_eq!(txn.success, [put(b"k", b"v")]);
    // End of input ends the current block; later blocks are empty.
    let txn = must_read("mod(\"k\") = \"0\"\n\nput k v");
    assert_eq!((txn.compare.len(), txn.success.len(), txn.failure.len()), (1, 1, 0));
    assert_eq!(must_read(""), TxnRequest::default());
}

#[test]
fn interactive_prompts_come_before_each_block() {
    let mut prompts = Vec::new();
    let input = "\nput k v\n\nget k\n\n";
    let txn = read_txn(&mut input.as_bytes(), &mut |p| {
        prompts.push(p.to_string());
        Ok(())
    });
    assert!(txn.is_ok());
    assert_eq!(prompts, [PROMPT_COMPARES, PROMPT_SUCCESS, PROMPT_FAILURE]);
    assert_eq!(PROMPT_SUCCESS, "success requests (get, put, del):");
    let failing = read_txn(&mut "".as_bytes(), &mut |_| Err(io::Error::other("closed")));
    assert_eq!(failing.err().map(|e| e.to_string()).as_deref(), Some("writing txn prompt: closed"));
}

#[test]
fn read_errors_name_the_problem() {
    let read_err = |input: &[u8], limit| {
        read_txn_limited(&mut &input[..], &mut |_| Ok(()), limit).err().map(|e| e.to_string())
    };
    assert_eq!(
        read_err(b"\nput k \xff\n\n", 1024).as_deref(),
        Some(r#"txn input line 2 is not valid UTF-8; write binary bytes as "\xNN""#)
    );
    assert_eq!(read_err(b"\nput k v\n\n", 5).as_deref(), Some("txn input exceeds 5 bytes"));
    assert_eq!(read_err(b"\nput k v\n\n", 10), None);
    assert_eq!(
        read_err(b"mod(\"k\") ~ \"1\"\n\n", 1024).as_deref(),
        Some(r#"malformed comparison: mod("k") ~ "1" (unknown operator "~"; use =, !=, > or <)"#)
    );
}

#[test]
fn parsers_never_panic_on_odd_input() {
    let odd = [
        "(",
        ")",
        "((",
        "\"",
        "'",
        "`",
        "\\",
        "mod(\"",
        "mod(\"\\",
        "mod(\"\\x",
        "mod(\"\\u12",
        "val(\"k\") = \"\\",
        "é(\"k\") = \"x\"",
        "mod(\"k\") é \"1\"",
        "get --",
        "put -- -k v",
        "get \"\" --prefix",
        "\u{0}",
        "get k --rev=-5",
        "del",
    ];
    for line in odd {
        let _ = parse_compare(line);
        let _ = parse_op(line);
        let _ = argify(line);
    }
    assert_eq!(must_op("put -- -k v"), put(b"-k", b"v"));
}
