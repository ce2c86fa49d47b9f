//! Exact-string tests of the JSON output against etcdctl's shapes.

use super::*;
use std::time::Duration;

fn hdr() -> ResponseHeader {
    ResponseHeader {
        cluster_id: 14841639068965178418,
        member_id: 10276657743932975437,
        revision: 5,
        raft_term: 2,
    }
}

const HDR: &str = r#"{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":5,"raft_term":2}"#;

fn foo_bar() -> KeyValue {
    KeyValue {
        key: b"foo".to_vec(),
        create_revision: 2,
        mod_revision: 5,
        version: 3,
        value: b"bar".to_vec(),
        lease: 0,
    }
}

const FOO_BAR: &str =
    r#"{"key":"Zm9v","create_revision":2,"mod_revision":5,"version":3,"value":"YmFy"}"#;

#[test]
fn range_omits_zero_fields() {
    let resp = RangeResponse { header: hdr(), kvs: vec![foo_bar()], more: false, count: 1 };
    assert_eq!(range(&resp), format!(r#"{{"header":{HDR},"kvs":[{FOO_BAR}],"count":1}}"#));
    let empty = RangeResponse { header: hdr(), ..RangeResponse::default() };
    assert_eq!(range(&empty), format!(r#"{{"header":{HDR}}}"#));
    let more = RangeResponse { more: true, count: 9, ..empty };
    assert_eq!(range(&more), format!(r#"{{"header":{HDR},"more":true,"count":9}}"#));
    assert_eq!(range(&RangeResponse::default()), r#"{"header":{}}"#);
}

#[test]
fn key_value_with_lease_and_without_value() {
    let kv = KeyValue {
        key: b"k".to_vec(),
        create_revision: 1,
        mod_revision: 1,
        version: 1,
        value: Vec::new(),
        lease: 7587,
    };
    let resp = RangeResponse { kvs: vec![kv], count: 1, ..RangeResponse::default() };
    assert_eq!(
        range(&resp),
        r#"{"header":{},"kvs":[{"key":"aw==","create_revision":1,"mod_revision":1,"version":1,"lease":7587}],"count":1}"#
    );
}

#[test]
fn put_and_delete_shapes() {
    assert_eq!(
        put(&PutResponse { header: hdr(), prev_kv: None }),
        format!(r#"{{"header":{HDR}}}"#)
    );
    assert_eq!(
        put(&PutResponse { header: hdr(), prev_kv: Some(foo_bar()) }),
        format!(r#"{{"header":{HDR},"prev_kv":{FOO_BAR}}}"#)
    );
    let del = DeleteRangeResponse { header: hdr(), deleted: 1, prev_kvs: vec![foo_bar()] };
    assert_eq!(
        delete_range(&del),
        format!(r#"{{"header":{HDR},"deleted":1,"prev_kvs":[{FOO_BAR}]}}"#)
    );
    let none = DeleteRangeResponse { header: hdr(), ..DeleteRangeResponse::default() };
    assert_eq!(delete_range(&none), format!(r#"{{"header":{HDR}}}"#));
}

#[test]
fn txn_wraps_each_response_like_etcdctl() {
    let sub = ResponseHeader { revision: 5, ..ResponseHeader::default() };
    let resp = TxnResponse {
        header: hdr(),
        succeeded: true,
        responses: vec![
            ResponseOp::Put(PutResponse { header: sub.clone(), prev_kv: None }),
            ResponseOp::Range(RangeResponse {
                header: sub.clone(),
                kvs: vec![foo_bar()],
                more: false,
                count: 1,
            }),
            ResponseOp::DeleteRange(DeleteRangeResponse {
                header: sub,
                deleted: 2,
                prev_kvs: vec![],
            }),
            ResponseOp::Txn(TxnResponse::default()),
        ],
    };
    let expected = format!(
        concat!(
            r#"{{"header":{hdr},"succeeded":true,"responses":["#,
            r#"{{"Response":{{"response_put":{{"header":{{"revision":5}}}}}}}},"#,
            r#"{{"Response":{{"response_range":{{"header":{{"revision":5}},"kvs":[{kv}],"count":1}}}}}},"#,
            r#"{{"Response":{{"response_delete_range":{{"header":{{"revision":5}},"deleted":2}}}}}},"#,
            r#"{{"Response":{{"response_txn":{{"header":{{}}}}}}}}]}}"#
        ),
        hdr = HDR,
        kv = FOO_BAR
    );
    assert_eq!(txn(&resp), expected);
    assert_eq!(
        txn(&TxnResponse { header: hdr(), ..TxnResponse::default() }),
        format!(r#"{{"header":{HDR}}}"#)
    );
}

#[test]
fn endpoint_status_uses_etcd_field_names() {
    let s = StatusResponse {
        header: hdr(),
        version: "3.4.0".into(),
        db_size: 20480,
        leader: 10276657743932975437,
        raft_index: 4,
        raft_term: 2,
        raft_applied_index: 4,
        errors: vec![],
        is_learner: false,
    };
    let rows = [EndpointStatus { endpoint: "127.0.0.1:2379".into(), status: s.clone() }];
    assert_eq!(
        endpoint_status(&rows),
        format!(
            r#"[{{"Endpoint":"127.0.0.1:2379","Status":{{"header":{HDR},"version":"3.4.0","dbSize":20480,"leader":10276657743932975437,"raftIndex":4,"raftTerm":2,"raftAppliedIndex":4}}}}]"#
        )
    );
    let odd = StatusResponse {
        errors: vec!["NOSPACE <1>".into()],
        is_learner: true,
        ..StatusResponse::default()
    };
    let rows = [EndpointStatus { endpoint: "e".into(), status: odd }];
    assert_eq!(
        endpoint_status(&rows),
        r#"[{"Endpoint":"e","Status":{"header":{},"errors":["NOSPACE \u003c1\u003e"],"isLearner":true}}]"#
    );
    assert_eq!(endpoint_status(&[]), "[]");
}

#[test]
fn endpoint_health_shape() {
    let rows = [
        EndpointHealth { endpoint: "a:1".into(), took: Duration::from_micros(1500), error: None },
        EndpointHealth {
            endpoint: "b:2".into(),
            took: Duration::from_secs(2),
            error: Some("no \"leader\"".into()),
        },
    ];
    assert_eq!(
        endpoint_health(&rows),
        r#"[{"endpoint":"a:1","health":true,"took":"1.5ms"},{"endpoint":"b:2","health":false,"took":"2s","error":"no \"leader\""}]"#
    );
}

#[test]
fn strings_are_escaped_like_go() {
    assert_eq!(quote("plain"), r#""plain""#);
    assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(quote("\n\r\t\u{8}\u{c}\u{1}\u{1f}"), r#""\n\r\t\b\f\u0001\u001f""#);
    assert_eq!(quote("<a&b>"), r#""\u003ca\u0026b\u003e""#);
    assert_eq!(quote("\u{2028}\u{2029}é😀\u{7f}"), "\"\\u2028\\u2029é😀\u{7f}\"");
}
