//! Pure translation of parsed command arguments into KV requests, with etcdctl's checks
//! and messages (`ctlv3/command/{put,get,del,compaction}_command.go`). Used both by the
//! top-level commands and by the request lines of a txn.

use crate::ctl::args::{CompactionArgs, DelArgs, GetArgs, PutArgs, WatchArgs};
use crate::ctl::error::CtlError;
use crate::ctl::go_fmt::parse_int;
use atoll_proto::WatchCreateRequest;
use atoll_proto::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, SortOrder, SortTarget,
    prefix_range_end,
};
use std::ffi::{OsStr, OsString};

const PUT_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
const GET_ARGS: &str =
    "get command needs one argument as key and an optional argument as range_end";
const DEL_ARGS: &str =
    "del command needs one argument as key and an optional argument as range_end";
const PREFIX_AND_FROM_KEY: &str =
    "`--prefix` and `--from-key` cannot be set at the same time, choose one";
const TOO_MANY_WITH_PREFIX: &str =
    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set";

/// The bytes of a command-line argument. Keys and values are bytes, so on Unix a non-UTF-8
/// argument is kept as is.
pub fn arg_bytes(arg: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        arg.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        arg.to_string_lossy().into_owned().into_bytes()
    }
}

/// Builds the request of `put`. `read_stdin` supplies the value when only the key is given
/// (etcdctl reads the value from standard input then); an empty result is an error.
pub fn put_request(
    args: &PutArgs,
    read_stdin: impl FnOnce() -> Result<Vec<u8>, CtlError>,
) -> Result<PutRequest, CtlError> {
    let Some(key) = args.args.first() else {
        return Err(CtlError::bad_args(PUT_ARGS));
    };
    if args.ignore_value && args.args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    // etcdctl silently drops a third argument; refusing it avoids storing "hello" for
    // `put k hello world`.
    if args.args.len() > 2 {
        return Err(CtlError::bad_args(PUT_ARGS));
    }
    let value = match (args.ignore_value, args.args.get(1)) {
        (true, _) => Vec::new(),
        (false, Some(value)) => arg_bytes(value),
        (false, None) => {
            let value = read_stdin()?;
            if value.is_empty() {
                return Err(CtlError::bad_args(PUT_ARGS));
            }
            value
        }
    };
    let lease = parse_lease_id(&args.lease)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: arg_bytes(key),
        value,
        lease,
        prev_kv: args.prev_kv,
        ignore_value: args.ignore_value,
        ignore_lease: args.ignore_lease,
    })
}

/// Parses a lease ID written in hexadecimal, as etcdctl prints and reads them.
pub fn parse_lease_id(text: &str) -> Result<i64, String> {
    parse_int(text, 16)
}

/// Builds the request of `get`, with etcdctl's defaults: `--prefix` and `--from-key` on an
/// empty key mean every key, `--sort-by` alone sorts ascending, `--order` alone sorts by key.
pub fn range_request(args: &GetArgs) -> Result<RangeRequest, CtlError> {
    let Some(key) = args.args.first() else {
        return Err(CtlError::bad_args(GET_ARGS));
    };
    if args.prefix && args.from_key {
        return Err(CtlError::bad_args(PREFIX_AND_FROM_KEY));
    }
    if args.keys_only && args.count_only {
        return Err(CtlError::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let serializable = match args.consistency.as_str() {
        "s" => true,
        "l" => false,
        other => {
            return Err(CtlError::bad_feature(format!("unknown consistency flag {other:?}")));
        }
    };
    let range_end = explicit_range_end(&args.args, args.prefix || args.from_key, GET_ARGS)?;
    let (sort_order, sort_target) = sort_options(&args.order, &args.sort_by)?;
    let (key, range_end) = key_range(arg_bytes(key), range_end, args.prefix, args.from_key);
    Ok(RangeRequest {
        key,
        range_end,
        limit: args.limit,
        revision: args.rev.max(0),
        sort_order,
        sort_target,
        serializable,
        keys_only: args.keys_only,
        count_only: args.count_only,
        ..RangeRequest::default()
    })
}

/// Builds the request of `del`.
pub fn delete_request(args: &DelArgs) -> Result<DeleteRangeRequest, CtlError> {
    let Some(key) = args.args.first() else {
        return Err(CtlError::bad_args(DEL_ARGS));
    };
    if args.prefix && args.from_key {
        return Err(CtlError::bad_args(PREFIX_AND_FROM_KEY));
    }
    let range_end = explicit_range_end(&args.args, args.prefix || args.from_key, DEL_ARGS)?;
    let (key, range_end) = key_range(arg_bytes(key), range_end, args.prefix, args.from_key);
    Ok(DeleteRangeRequest { key, range_end, prev_kv: args.prev_kv })
}

/// Builds the create request of `watch`: etcdctl's `getWatchChan` (a `range_end` argument
/// and `--prefix` are mutually exclusive; `--prefix` on an empty key watches every key).
pub fn watch_request(args: &WatchArgs) -> Result<WatchCreateRequest, CtlError> {
    let (key, range_end) = match args.args.as_slice() {
        [key] => key_range(arg_bytes(key), None, args.prefix, false),
        [_, _] if args.prefix => {
            return Err(CtlError::bad_args("`range_end` and `--prefix` are mutually exclusive"));
        }
        [key, end] => (arg_bytes(key), arg_bytes(end)),
        _ => return Err(CtlError::bad_args("bad number of arguments")),
    };
    Ok(WatchCreateRequest {
        key,
        range_end,
        start_revision: args.rev,
        progress_notify: args.progress_notify,
        prev_kv: args.prev_kv,
        ..WatchCreateRequest::default()
    })
}

/// Builds the request of `compaction <revision>`.
pub fn compaction_request(args: &CompactionArgs) -> Result<CompactionRequest, CtlError> {
    let [revision] = args.args.as_slice() else {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    };
    let revision = parse_int(revision, 10)
        .map_err(|e| CtlError::bad_args(format!("bad revision ({e}), expecting a decimal")))?;
    Ok(CompactionRequest { revision, physical: args.physical })
}

/// The `range_end` argument, if given; refused with `--prefix`/`--from-key` and past two
/// positional arguments.
fn explicit_range_end(
    args: &[OsString],
    prefix_or_from_key: bool,
    usage: &str,
) -> Result<Option<Vec<u8>>, CtlError> {
    match args {
        [_] => Ok(None),
        [_, range_end] if !prefix_or_from_key => Ok(Some(arg_bytes(range_end))),
        [_, _] => Err(CtlError::bad_args(TOO_MANY_WITH_PREFIX)),
        _ => Err(CtlError::bad_args(usage)),
    }
}

/// clientv3's `WithPrefix`/`WithFromKey`: an empty key becomes `"\0"` (the first key) and
/// the range runs to `"\0"` (the end).
fn key_range(
    key: Vec<u8>,
    range_end: Option<Vec<u8>>,
    prefix: bool,
    from_key: bool,
) -> (Vec<u8>, Vec<u8>) {
    if (prefix || from_key) && key.is_empty() {
        return (vec![0], vec![0]);
    }
    if prefix {
        let end = prefix_range_end(&key);
        return (key, end);
    }
    if from_key {
        return (key, vec![0]);
    }
    (key, range_end.unwrap_or_default())
}

/// Parses `--order` and `--sort-by` (case-insensitive) into the request's sort fields.
fn sort_options(order: &str, sort_by: &str) -> Result<(SortOrder, SortTarget), CtlError> {
    let order_given = match order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => return Err(CtlError::bad_feature(format!("bad sort order {order}"))),
    };
    let target = match sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => return Err(CtlError::bad_feature(format!("bad sort target {sort_by}"))),
    };
    let order = match (target, order_given) {
        // clientv3's WithSort: results already come in ascending key order, and asking for a
        // sort would make the server read the whole range before applying the limit.
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        // etcd's server sorts ascending when only a target is given (apply.go); say so
        // explicitly rather than rely on the server repeating that default.
        (SortTarget::Key, order) => order,
        (_, SortOrder::None) => SortOrder::Ascend,
        (_, order) => order,
    };
    Ok((order, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn get(args: &[&str]) -> GetArgs {
        GetArgs { args: os(args), consistency: "l".into(), ..GetArgs::default() }
    }

    fn must_range(args: &GetArgs) -> RangeRequest {
        match range_request(args) {
            Ok(r) => r,
            Err(e) => panic!("range_request: {e}"),
        }
    }

    fn range_err(args: &GetArgs) -> String {
        range_request(args).err().map(|e| e.to_string()).unwrap_or_default()
    }

    fn no_stdin() -> Result<Vec<u8>, CtlError> {
        panic!("stdin must not be read")
    }

    #[test]
    fn put_takes_key_value_lease_and_flags() {
        let args = PutArgs {
            args: os(&["k", "v"]),
            lease: "694d".into(),
            prev_kv: true,
            ..PutArgs::default()
        };
        let req = put_request(&args, no_stdin).ok();
        assert_eq!(
            req,
            Some(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                lease: 0x694d,
                prev_kv: true,
                ..PutRequest::default()
            })
        );
    }

    #[test]
    fn put_reads_value_from_stdin_only_when_missing() {
        let args = PutArgs { args: os(&["k"]), lease: "0".into(), ..PutArgs::default() };
        let req = put_request(&args, || Ok(b"from stdin\n".to_vec())).ok();
        assert_eq!(req.map(|r| r.value), Some(b"from stdin\n".to_vec()));
        let err = put_request(&args, || Ok(Vec::new())).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some(PUT_ARGS));
        let ignore = PutArgs { ignore_value: true, ..args };
        assert_eq!(put_request(&ignore, no_stdin).ok().map(|r| r.value), Some(Vec::new()));
    }

    #[test]
    fn put_argument_errors_use_etcdctl_text() {
        let cases = [
            (PutArgs { lease: "0".into(), ..PutArgs::default() }, PUT_ARGS.to_string()),
            (
                PutArgs { args: os(&["k", "v"]), ignore_value: true, ..PutArgs::default() },
                "put command needs only 1 argument when 'ignore-value' is set".to_string(),
            ),
            (PutArgs { args: os(&["k", "v", "w"]), ..PutArgs::default() }, PUT_ARGS.to_string()),
            (
                PutArgs { args: os(&["k", "v"]), lease: "xyz".into(), ..PutArgs::default() },
                r#"bad lease ID (strconv.ParseInt: parsing "xyz": invalid syntax), expecting ID in Hex"#
                    .to_string(),
            ),
        ];
        for (args, expected) in cases {
            let err = put_request(&args, || Ok(Vec::new())).err();
            assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(128));
            assert_eq!(err.map(|e| e.to_string()), Some(expected));
        }
    }

    #[test]
    fn get_single_key_and_explicit_range() {
        let req = must_range(&get(&["foo"]));
        assert_eq!((req.key.as_slice(), req.range_end.as_slice()), (&b"foo"[..], &b""[..]));
        assert_eq!((req.sort_order, req.sort_target), (SortOrder::None, SortTarget::Key));
        let req = must_range(&get(&["a", "c"]));
        assert_eq!(req.range_end, b"c");
        assert!(!req.serializable);
    }

    #[test]
    fn get_prefix_and_from_key_follow_clientv3() {
        let req = must_range(&GetArgs { prefix: true, ..get(&["foo"]) });
        assert_eq!((req.key, req.range_end), (b"foo".to_vec(), b"fop".to_vec()));
        let req = must_range(&GetArgs { prefix: true, ..get(&[""]) });
        assert_eq!((req.key, req.range_end), (vec![0], vec![0]));
        let req = must_range(&GetArgs { from_key: true, ..get(&["b"]) });
        assert_eq!((req.key, req.range_end), (b"b".to_vec(), vec![0]));
        let req = must_range(&GetArgs { from_key: true, ..get(&[""]) });
        assert_eq!((req.key, req.range_end), (vec![0], vec![0]));
    }

    #[test]
    fn get_options_map_to_request_fields() {
        let args =
            GetArgs { limit: 10, rev: 42, keys_only: true, consistency: "s".into(), ..get(&["k"]) };
        let req = must_range(&args);
        assert_eq!((req.limit, req.revision), (10, 42));
        assert!(req.keys_only && req.serializable && !req.count_only);
        let req = must_range(&GetArgs { rev: -3, count_only: true, ..get(&["k"]) });
        assert_eq!(req.revision, 0);
        assert!(req.count_only);
    }

    #[test]
    fn get_sort_defaults_follow_etcd() {
        let sorted = |order: &str, by: &str| {
            let r = must_range(&GetArgs { order: order.into(), sort_by: by.into(), ..get(&["k"]) });
            (r.sort_order, r.sort_target)
        };
        assert_eq!(sorted("", "MODIFY"), (SortOrder::Ascend, SortTarget::Mod));
        assert_eq!(sorted("descend", ""), (SortOrder::Descend, SortTarget::Key));
        assert_eq!(sorted("ASCEND", "KEY"), (SortOrder::None, SortTarget::Key));
        assert_eq!(sorted("DESCEND", "version"), (SortOrder::Descend, SortTarget::Version));
        assert_eq!(sorted("ASCEND", "CREATE"), (SortOrder::Ascend, SortTarget::Create));
        assert_eq!(sorted("", "VALUE"), (SortOrder::Ascend, SortTarget::Value));
    }

    #[test]
    fn get_errors_use_etcdctl_text_and_codes() {
        assert_eq!(range_err(&get(&[])), GET_ARGS);
        assert_eq!(
            range_err(&GetArgs { prefix: true, from_key: true, ..get(&["k"]) }),
            PREFIX_AND_FROM_KEY
        );
        assert_eq!(
            range_err(&GetArgs { keys_only: true, count_only: true, ..get(&["k"]) }),
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one"
        );
        assert_eq!(range_err(&GetArgs { prefix: true, ..get(&["a", "b"]) }), TOO_MANY_WITH_PREFIX);
        assert_eq!(range_err(&get(&["a", "b", "c"])), GET_ARGS);
        let bad = GetArgs { consistency: "x".into(), ..get(&["k"]) };
        assert_eq!(range_err(&bad), r#"unknown consistency flag "x""#);
        assert_eq!(range_request(&bad).err().map(|e| e.exit_code()), Some(4));
        assert_eq!(range_err(&GetArgs { order: "UP".into(), ..get(&["k"]) }), "bad sort order UP");
        assert_eq!(
            range_err(&GetArgs { sort_by: "SIZE".into(), ..get(&["k"]) }),
            "bad sort target SIZE"
        );
    }

    #[test]
    fn del_builds_ranges_like_get() {
        let del = |args: DelArgs| delete_request(&args).map_err(|e| e.to_string());
        let req = del(DelArgs { args: os(&["k"]), prev_kv: true, ..DelArgs::default() });
        assert_eq!(
            req,
            Ok(DeleteRangeRequest { key: b"k".to_vec(), range_end: Vec::new(), prev_kv: true })
        );
        let req = del(DelArgs { args: os(&["foo"]), prefix: true, ..DelArgs::default() });
        assert_eq!(req.map(|r| (r.key, r.range_end)), Ok((b"foo".to_vec(), b"fop".to_vec())));
        let req = del(DelArgs { args: os(&[""]), prefix: true, ..DelArgs::default() });
        assert_eq!(req.map(|r| (r.key, r.range_end)), Ok((vec![0], vec![0])));
        let req = del(DelArgs { args: os(&["", ""]), ..DelArgs::default() });
        assert_eq!(req.map(|r| (r.key, r.range_end)), Ok((Vec::new(), Vec::new())));
        assert_eq!(del(DelArgs::default()), Err(DEL_ARGS.to_string()));
        assert_eq!(
            del(DelArgs { args: os(&["a", "b", "c"]), ..DelArgs::default() }),
            Err(DEL_ARGS.to_string())
        );
        assert_eq!(
            del(DelArgs { args: os(&["a", "b"]), from_key: true, ..DelArgs::default() }),
            Err(TOO_MANY_WITH_PREFIX.to_string())
        );
        assert_eq!(
            del(DelArgs { args: os(&["a"]), from_key: true, prefix: true, ..DelArgs::default() }),
            Err(PREFIX_AND_FROM_KEY.to_string())
        );
    }

    #[test]
    fn compaction_needs_one_decimal_revision() {
        let compaction = |args: &[&str], physical| {
            let args =
                CompactionArgs { args: args.iter().map(|s| s.to_string()).collect(), physical };
            compaction_request(&args).map_err(|e| e.to_string())
        };
        assert_eq!(
            compaction(&["42"], true),
            Ok(CompactionRequest { revision: 42, physical: true })
        );
        assert_eq!(compaction(&[], false), Err("compaction command needs 1 argument".into()));
        assert_eq!(
            compaction(&["1", "2"], false),
            Err("compaction command needs 1 argument".into())
        );
        assert_eq!(
            compaction(&["x"], false),
            Err(r#"bad revision (strconv.ParseInt: parsing "x": invalid syntax), expecting a decimal"#.into())
        );
    }
}
