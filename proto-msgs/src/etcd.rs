//! The etcd v3 API as Rust types (feature `grpc`): prost messages and tonic clients and
//! servers generated at build time from the project's own .proto files in `proto/`, which
//! follow etcd v3.5's package, service, message and field names and numbers, so bytes from
//! etcd's clients decode here and bytes encoded here decode in etcd.
//!
//! Nothing here is written by hand but this file; the packages mirror etcd's:
//! `etcdserverpb` (KV, Watch, Lease, Cluster, Maintenance, Auth), `mvccpb`, `authpb`,
//! `v3lockpb` and `v3electionpb`. Cross-package references (`super::mvccpb::KeyValue`)
//! resolve because the modules are siblings.

// Generated code: its docs come from the .proto comments, which do not cover every item, and
// its style is the generator's.
#![allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]

/// Stored key-value records and watch events.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// Users, roles and permissions.
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// The KV, Watch, Lease, Cluster, Maintenance and Auth services and their messages.
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// The Lock service.
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// The Election service.
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

#[cfg(test)]
mod tests {
    use super::etcdserverpb::*;
    use super::mvccpb::KeyValue;
    use prost::Message as _;

    #[test]
    fn a_put_encodes_to_etcds_bytes() {
        // key is field 1 and value field 2, both length-delimited (wire type 2):
        // tag 0x0a = 1 << 3 | 2, tag 0x12 = 2 << 3 | 2.
        let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
        let bytes = put.encode_to_vec();
        assert_eq!(bytes, [0x0a, 0x01, b'k', 0x12, 0x01, b'v']);
        assert_eq!(PutRequest::decode(bytes.as_slice()).expect("decodes"), put);
        // lease is field 3, varint (0x18); prev_kv field 4 (0x20).
        let leased = PutRequest { lease: 5, prev_kv: true, ..Default::default() };
        assert_eq!(leased.encode_to_vec(), [0x18, 0x05, 0x20, 0x01]);
    }

    #[test]
    fn a_range_response_round_trips_with_etcds_field_numbers() {
        let kv = KeyValue {
            key: b"a".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 1,
            value: b"x".to_vec(),
            lease: 0,
        };
        let response = RangeResponse {
            header: Some(ResponseHeader { revision: 7, ..Default::default() }),
            kvs: vec![kv],
            more: true,
            count: 9,
        };
        let bytes = response.encode_to_vec();
        // header (field 1) holding revision (field 3, varint 0x18) = 7.
        assert_eq!(&bytes[..4], [0x0a, 0x02, 0x18, 0x07]);
        // kvs (field 2): key=1, create_revision=2, mod_revision=3, version=4, value=5.
        let kv_bytes = [0x0a, 0x01, b'a', 0x10, 0x02, 0x18, 0x03, 0x20, 0x01, 0x2a, 0x01, b'x'];
        assert_eq!(bytes[4..6], [0x12, kv_bytes.len() as u8]);
        assert_eq!(bytes[6..6 + kv_bytes.len()], kv_bytes);
        // more (field 3) = true, count (field 4) = 9.
        assert_eq!(bytes[6 + kv_bytes.len()..], [0x18, 0x01, 0x20, 0x09]);
        assert_eq!(RangeResponse::decode(bytes.as_slice()).expect("decodes"), response);
    }

    #[test]
    fn a_range_stream_chunk_wraps_a_range_response_in_field_1() {
        let inner = RangeResponse { count: 2, ..Default::default() };
        let chunk = RangeStreamResponse { range_response: Some(inner) };
        // range_response (field 1, length-delimited) holding count (field 4) = 2.
        assert_eq!(chunk.encode_to_vec(), [0x0a, 0x02, 0x20, 0x02]);
    }

    #[test]
    fn compare_range_end_is_field_64_and_txn_ops_nest() {
        // range_end jumps to 64: tag (64 << 3 | 2) = 514 = varint 0x82 0x04.
        let compare = Compare { range_end: b"z".to_vec(), ..Default::default() };
        assert_eq!(compare.encode_to_vec(), [0x82, 0x04, 0x01, b'z']);
        let put = PutRequest { key: b"k".to_vec(), ..Default::default() };
        let op = RequestOp { request: Some(request_op::Request::RequestPut(put)) };
        let txn = TxnRequest { success: vec![op], ..Default::default() };
        // success (field 2) holding request_put (field 2) holding key (field 1).
        assert_eq!(txn.encode_to_vec(), [0x12, 0x05, 0x12, 0x03, 0x0a, 0x01, b'k']);
    }

    #[test]
    fn services_have_etcds_full_names() {
        use super::etcdserverpb::kv_server::KvServer;
        use tonic::server::NamedService;
        assert_eq!(<KvServer<NoKv> as NamedService>::NAME, "etcdserverpb.KV");
    }

    /// A stand-in that lets the test name the generated server type.
    struct NoKv;

    #[tonic::async_trait]
    impl super::etcdserverpb::kv_server::Kv for NoKv {
        async fn range(
            &self,
            _: tonic::Request<RangeRequest>,
        ) -> Result<tonic::Response<RangeResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        type RangeStreamStream = std::pin::Pin<
            Box<
                dyn tonic::codegen::tokio_stream::Stream<
                        Item = Result<RangeStreamResponse, tonic::Status>,
                    > + Send,
            >,
        >;
        async fn range_stream(
            &self,
            _: tonic::Request<RangeRequest>,
        ) -> Result<tonic::Response<Self::RangeStreamStream>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn put(
            &self,
            _: tonic::Request<PutRequest>,
        ) -> Result<tonic::Response<PutResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn delete_range(
            &self,
            _: tonic::Request<DeleteRangeRequest>,
        ) -> Result<tonic::Response<DeleteRangeResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn txn(
            &self,
            _: tonic::Request<TxnRequest>,
        ) -> Result<tonic::Response<TxnResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn compact(
            &self,
            _: tonic::Request<CompactionRequest>,
        ) -> Result<tonic::Response<CompactionResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }
}
