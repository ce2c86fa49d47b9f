//! etcdctl's `-w json` output: Go's `encoding/json` applied to etcd's protobuf structs, so
//! fields are in proto order under their `json:"...,omitempty"` names, zero values are
//! omitted, byte strings are base64 and numbers are plain decimal. Written by hand (not
//! serde) because field order, omission and Go's string escaping must match exactly.
//!
//! A txn response's ops use etcd 3.5's tags (`{"Response":{"response_put":{...}}}`);
//! etcdctl 3.4's generated code lacked them and printed `"ResponsePut"`.

use crate::ctl::go_fmt::format_duration;
use crate::ctl::output::{EndpointHealth, EndpointStatus};
use atoll_proto::lease::*;
use atoll_proto::{
    DeleteRangeResponse, Event, EventType, KeyValue, PutResponse, RangeResponse, ResponseHeader,
    ResponseOp, StatusResponse, TxnResponse, WatchResponse,
};
use base64::Engine as _;
use std::fmt::Write as _;

/// A JSON object under construction; fields are appended in call order.
struct Object {
    text: String,
    empty: bool,
}

impl Object {
    fn new() -> Self {
        Object { text: "{".to_string(), empty: true }
    }

    fn field(&mut self, name: &str) -> &mut String {
        if !self.empty {
            self.text.push(',');
        }
        self.empty = false;
        let _ = write!(self.text, "\"{name}\":");
        &mut self.text
    }

    /// A raw JSON value, always written.
    fn raw(mut self, name: &str, json: &str) -> Self {
        self.field(name).push_str(json);
        self
    }

    fn number(mut self, name: &str, value: impl Into<i128>) -> Self {
        let value = value.into();
        if value != 0 {
            let _ = write!(self.field(name), "{value}");
        }
        self
    }

    fn flag(self, name: &str, value: bool) -> Self {
        if value { self.raw(name, "true") } else { self }
    }

    fn bytes(mut self, name: &str, value: &[u8]) -> Self {
        if !value.is_empty() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            let _ = write!(self.field(name), "\"{encoded}\"");
        }
        self
    }

    fn string(mut self, name: &str, value: &str) -> Self {
        if !value.is_empty() {
            let quoted = quote(value);
            self.field(name).push_str(&quoted);
        }
        self
    }

    /// A number written even when zero (a Go field without `omitempty`).
    fn always(mut self, name: &str, value: impl Into<i128>) -> Self {
        let _ = write!(self.field(name), "{}", value.into());
        self
    }

    /// A response header embedded in a clientv3 struct: its fields inline, zeros omitted.
    fn header_fields(self, h: &ResponseHeader) -> Self {
        self.number("cluster_id", h.cluster_id)
            .number("member_id", h.member_id)
            .number("revision", h.revision)
            .number("raft_term", h.raft_term)
    }

    /// An array of already-encoded values, omitted when empty.
    fn array(self, name: &str, items: impl IntoIterator<Item = String>) -> Self {
        let items: Vec<String> = items.into_iter().collect();
        if items.is_empty() { self } else { self.raw(name, &format!("[{}]", items.join(","))) }
    }

    fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Quotes a string as Go's `encoding/json` does: `<`, `>`, `&`, U+2028 and U+2029 are
/// escaped as `\u003c`... and control characters as `\n`, `\t`... or `\u00XX`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn header(h: &ResponseHeader) -> String {
    Object::new()
        .number("cluster_id", h.cluster_id)
        .number("member_id", h.member_id)
        .number("revision", h.revision)
        .number("raft_term", h.raft_term)
        .finish()
}

fn key_value(kv: &KeyValue) -> String {
    Object::new()
        .bytes("key", &kv.key)
        .number("create_revision", kv.create_revision)
        .number("mod_revision", kv.mod_revision)
        .number("version", kv.version)
        .bytes("value", &kv.value)
        .number("lease", kv.lease)
        .finish()
}

/// `watch`: Go's encoding of clientv3's `WatchResponse` struct, whose fields have no JSON
/// tags (so every one is written, under its Go name) and whose events are `mvccpb.Event`
/// (`type` omitted for PUT, which is 0): `{"Header":{...},"Events":[...],
/// "CompactRevision":0,"Canceled":false,"Created":false}`.
pub fn watch(resp: &WatchResponse) -> String {
    let events = if resp.events.is_empty() {
        "null".to_string()
    } else {
        let items: Vec<String> = resp.events.iter().map(event).collect();
        format!("[{}]", items.join(","))
    };
    let flag = |b: bool| if b { "true" } else { "false" };
    Object::new()
        .raw("Header", &header(&resp.header))
        .raw("Events", &events)
        .raw("CompactRevision", &resp.compact_revision.to_string())
        .raw("Canceled", flag(resp.canceled))
        .raw("Created", flag(resp.created))
        .finish()
}

fn event(e: &Event) -> String {
    let kind = match e.kind {
        EventType::Put => 0,
        EventType::Delete => 1,
    };
    let object = Object::new().number("type", kind).raw("kv", &key_value(&e.kv));
    match &e.prev_kv {
        Some(prev) => object.raw("prev_kv", &key_value(prev)).finish(),
        None => object.finish(),
    }
}

/// `get`: `{"header":{...},"kvs":[...],"more":true,"count":N}`.
pub fn range(resp: &RangeResponse) -> String {
    Object::new()
        .raw("header", &header(&resp.header))
        .array("kvs", resp.kvs.iter().map(key_value))
        .flag("more", resp.more)
        .number("count", resp.count)
        .finish()
}

/// `put`: `{"header":{...},"prev_kv":{...}}`.
pub fn put(resp: &PutResponse) -> String {
    let object = Object::new().raw("header", &header(&resp.header));
    match &resp.prev_kv {
        Some(prev) => object.raw("prev_kv", &key_value(prev)).finish(),
        None => object.finish(),
    }
}

/// `del`: `{"header":{...},"deleted":N,"prev_kvs":[...]}`.
pub fn delete_range(resp: &DeleteRangeResponse) -> String {
    Object::new()
        .raw("header", &header(&resp.header))
        .number("deleted", resp.deleted)
        .array("prev_kvs", resp.prev_kvs.iter().map(key_value))
        .finish()
}

/// `txn`: `{"header":{...},"succeeded":true,"responses":[{"Response":{"response_put":...}}]}`.
pub fn txn(resp: &TxnResponse) -> String {
    Object::new()
        .raw("header", &header(&resp.header))
        .flag("succeeded", resp.succeeded)
        .array("responses", resp.responses.iter().map(response_op))
        .finish()
}

fn response_op(op: &ResponseOp) -> String {
    let (name, body) = match op {
        ResponseOp::Range(r) => ("response_range", range(r)),
        ResponseOp::Put(r) => ("response_put", put(r)),
        ResponseOp::DeleteRange(r) => ("response_delete_range", delete_range(r)),
        ResponseOp::Txn(r) => ("response_txn", txn(r)),
    };
    let inner = Object::new().raw(name, &body).finish();
    Object::new().raw("Response", &inner).finish()
}

fn status(s: &StatusResponse) -> String {
    Object::new()
        .raw("header", &header(&s.header))
        .string("version", &s.version)
        .number("dbSize", s.db_size)
        .number("leader", s.leader)
        .number("raftIndex", s.raft_index)
        .number("raftTerm", s.raft_term)
        .number("raftAppliedIndex", s.raft_applied_index)
        .array("errors", s.errors.iter().map(|e| quote(e)))
        .flag("isLearner", s.is_learner)
        .finish()
}

/// `endpoint status`: `[{"Endpoint":"...","Status":{...}}]`.
pub fn endpoint_status(rows: &[EndpointStatus]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|row| {
            Object::new()
                .raw("Endpoint", &quote(&row.endpoint))
                .raw("Status", &status(&row.status))
                .finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `endpoint health`: `[{"endpoint":"...","health":true,"took":"1.2ms"}]`, plus `"error"`
/// for an unhealthy endpoint.
pub fn endpoint_health(rows: &[EndpointHealth]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|row| {
            Object::new()
                .raw("endpoint", &quote(&row.endpoint))
                .raw("health", if row.error.is_none() { "true" } else { "false" })
                .raw("took", &quote(&format_duration(row.took)))
                .string("error", row.error.as_deref().unwrap_or(""))
                .finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;

/// `lease grant`: clientv3's `LeaseGrantResponse` (header inline, untagged fields):
/// `{"cluster_id":..,"raft_term":..,"ID":..,"TTL":60,"Error":""}`.
pub fn lease_grant(resp: &LeaseGrantResponse) -> String {
    Object::new()
        .header_fields(&resp.header)
        .always("ID", resp.id)
        .always("TTL", resp.ttl)
        .raw("Error", "\"\"")
        .finish()
}

/// `lease revoke`: etcd's `LeaseRevokeResponse`: `{"header":{...}}`.
pub fn lease_revoke(resp: &LeaseRevokeResponse) -> String {
    Object::new().raw("header", &header(&resp.header)).finish()
}

/// `lease keep-alive`: clientv3's `LeaseKeepAliveResponse`: `{...,"ID":..,"TTL":60}`.
pub fn lease_keep_alive(resp: &LeaseKeepAliveResponse) -> String {
    Object::new().header_fields(&resp.header).always("ID", resp.id).always("TTL", resp.ttl).finish()
}

/// `lease timetolive`: clientv3's `LeaseTimeToLiveResponse`, tagged `id`, `ttl`,
/// `granted-ttl` and `keys` (`null` when there are none).
pub fn lease_time_to_live(resp: &LeaseTimeToLiveResponse) -> String {
    let keys = if resp.keys.is_empty() {
        "null".to_string()
    } else {
        let encoded: Vec<String> = resp
            .keys
            .iter()
            .map(|k| format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(k)))
            .collect();
        format!("[{}]", encoded.join(","))
    };
    Object::new()
        .header_fields(&resp.header)
        .always("id", resp.id)
        .always("ttl", resp.ttl)
        .always("granted-ttl", resp.granted_ttl)
        .raw("keys", &keys)
        .finish()
}

/// `lease list`: clientv3's `LeaseLeasesResponse`: `{...,"leases":[{"id":..}]}`.
pub fn lease_leases(resp: &LeaseLeasesResponse) -> String {
    let leases: Vec<String> =
        resp.ids.iter().map(|id| Object::new().always("id", *id).finish()).collect();
    Object::new()
        .header_fields(&resp.header)
        .raw("leases", &format!("[{}]", leases.join(",")))
        .finish()
}

/// `member list|add|remove|update|promote`: etcd's `MemberListResponse` shape
/// (`{"header":{...},"members":[{"ID":..,"name":..,"peerURLs":[..],"clientURLs":[..]}]}`;
/// `isLearner` only when true, as Go's `omitempty`).
pub fn members(resp: &atoll_proto::member::MembersResponse) -> String {
    let strings = |v: &[String]| -> String {
        let quoted: Vec<String> = v.iter().map(|s| quote(s)).collect();
        format!("[{}]", quoted.join(","))
    };
    let member = |m: &atoll_proto::shard_map::Member| {
        let mut o = Object::new().always("ID", m.id.0);
        if !m.name.is_empty() {
            o = o.raw("name", &quote(&m.name));
        }
        o = o.raw("peerURLs", &strings(&m.peer_urls));
        if !m.client_urls.is_empty() {
            o = o.raw("clientURLs", &strings(&m.client_urls));
        }
        if m.is_learner {
            o = o.raw("isLearner", "true");
        }
        o.finish()
    };
    Object::new()
        .raw("header", &header(&resp.header))
        .array("members", resp.members.iter().map(member))
        .finish()
}

/// `shard list`: the map in the shape of etcd's JSON answers (camel-case names, byte
/// strings base64, zeros omitted, IDs decimal as `member list`'s): `{"header":{...},
/// "version":1,"shards":[{"ID":1,"start":..,"end":..,"leader":..,"epoch":{"rangeVersion":1,
/// "confVersion":1},"replicas":[{"ID":..,"isLearner":true}]}]}`.
pub fn shard_map(resp: &atoll_proto::shard_map::ShardMapResponse) -> String {
    use atoll_proto::shard_map::{ReplicaDescriptor, ReplicaRole, ShardDescriptor};
    let replica = |r: &ReplicaDescriptor| {
        Object::new()
            .always("ID", r.node.0)
            .flag("isLearner", r.role == ReplicaRole::Learner)
            .finish()
    };
    let shard = |(s, leader): (&ShardDescriptor, u64)| {
        let epoch = Object::new()
            .number("rangeVersion", s.epoch.range_version)
            .number("confVersion", s.epoch.conf_version)
            .finish();
        Object::new()
            .always("ID", s.id.0)
            .bytes("start", &s.start)
            .bytes("end", &s.end)
            .number("leader", leader)
            .raw("epoch", &epoch)
            .array("replicas", s.replicas.iter().map(replica))
            .finish()
    };
    let leaders = resp.leaders.iter().map(|l| l.0).chain(std::iter::repeat(0));
    Object::new()
        .raw("header", &header(&resp.header))
        .number("version", resp.map.version)
        .array("shards", resp.map.shards.iter().zip(leaders).map(shard))
        .finish()
}
