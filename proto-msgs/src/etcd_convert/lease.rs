//! Lease messages (ETCD_API.md §1.5) between gRPC and native, both directions: the gateway
//! converts requests from gRPC and answers to gRPC; gRPC clients go the other way.

use super::response::{header_from_pb, header_to_pb};
use crate::etcd::etcdserverpb as pb;
use crate::lease::*;

/// An etcd `LeaseGrantRequest` as the native one.
pub fn grant_from_pb(r: pb::LeaseGrantRequest) -> LeaseGrantRequest {
    LeaseGrantRequest { ttl: r.ttl, id: r.id }
}

/// A native grant as etcd's `LeaseGrantResponse`.
pub fn grant_to_pb(r: LeaseGrantResponse) -> pb::LeaseGrantResponse {
    pb::LeaseGrantResponse {
        header: header_to_pb(r.header),
        id: r.id,
        ttl: r.ttl,
        error: String::new(),
    }
}

/// An etcd `LeaseGrantResponse` as the native one.
pub fn grant_from_pb_response(r: pb::LeaseGrantResponse) -> LeaseGrantResponse {
    LeaseGrantResponse { header: header_from_pb(r.header), id: r.id, ttl: r.ttl }
}

/// An etcd `LeaseRevokeRequest` as the native one.
pub fn revoke_from_pb(r: pb::LeaseRevokeRequest) -> LeaseRevokeRequest {
    LeaseRevokeRequest { id: r.id }
}

/// A native revoke answer as etcd's.
pub fn revoke_to_pb(r: LeaseRevokeResponse) -> pb::LeaseRevokeResponse {
    pb::LeaseRevokeResponse { header: header_to_pb(r.header) }
}

/// An etcd `LeaseKeepAliveRequest` as the native one.
pub fn keep_alive_from_pb(r: pb::LeaseKeepAliveRequest) -> LeaseKeepAliveRequest {
    LeaseKeepAliveRequest { id: r.id }
}

/// A native keepalive answer as etcd's.
pub fn keep_alive_to_pb(r: LeaseKeepAliveResponse) -> pb::LeaseKeepAliveResponse {
    pb::LeaseKeepAliveResponse { header: header_to_pb(r.header), id: r.id, ttl: r.ttl }
}

/// An etcd `LeaseTimeToLiveRequest` as the native one.
pub fn time_to_live_from_pb(r: pb::LeaseTimeToLiveRequest) -> LeaseTimeToLiveRequest {
    LeaseTimeToLiveRequest { id: r.id, keys: r.keys }
}

/// A native time-to-live answer as etcd's.
pub fn time_to_live_to_pb(r: LeaseTimeToLiveResponse) -> pb::LeaseTimeToLiveResponse {
    pb::LeaseTimeToLiveResponse {
        header: header_to_pb(r.header),
        id: r.id,
        ttl: r.ttl,
        granted_ttl: r.granted_ttl,
        keys: r.keys,
    }
}

/// A native lease list as etcd's `LeaseLeasesResponse`.
pub fn leases_to_pb(r: LeaseLeasesResponse) -> pb::LeaseLeasesResponse {
    pb::LeaseLeasesResponse {
        header: header_to_pb(r.header),
        leases: r.ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
    }
}

/// A native grant request as etcd's (a gRPC client's direction).
pub fn grant_to_pb_request(r: LeaseGrantRequest) -> pb::LeaseGrantRequest {
    pb::LeaseGrantRequest { ttl: r.ttl, id: r.id }
}

/// A native revoke request as etcd's.
pub fn revoke_to_pb_request(r: LeaseRevokeRequest) -> pb::LeaseRevokeRequest {
    pb::LeaseRevokeRequest { id: r.id }
}

/// An etcd revoke answer as the native one.
pub fn revoke_from_pb_response(r: pb::LeaseRevokeResponse) -> LeaseRevokeResponse {
    LeaseRevokeResponse { header: header_from_pb(r.header) }
}

/// A native keepalive request as etcd's (one request of the `LeaseKeepAlive` stream).
pub fn keep_alive_to_pb_request(r: LeaseKeepAliveRequest) -> pb::LeaseKeepAliveRequest {
    pb::LeaseKeepAliveRequest { id: r.id }
}

/// An etcd keepalive answer as the native one.
pub fn keep_alive_from_pb_response(r: pb::LeaseKeepAliveResponse) -> LeaseKeepAliveResponse {
    LeaseKeepAliveResponse { header: header_from_pb(r.header), id: r.id, ttl: r.ttl }
}

/// An etcd lease list as the native one.
pub fn leases_from_pb_response(r: pb::LeaseLeasesResponse) -> LeaseLeasesResponse {
    LeaseLeasesResponse {
        header: header_from_pb(r.header),
        ids: r.leases.into_iter().map(|l| l.id).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_messages_keep_their_fields() {
        let grant = grant_from_pb(pb::LeaseGrantRequest { ttl: 60, id: 7 });
        assert_eq!(grant, LeaseGrantRequest { ttl: 60, id: 7 });
        let answer = LeaseGrantResponse { id: 7, ttl: 60, ..Default::default() };
        assert_eq!(grant_from_pb_response(grant_to_pb(answer.clone())), answer);
        let ttl = LeaseTimeToLiveResponse {
            id: 7,
            ttl: -1,
            granted_ttl: 0,
            keys: vec![b"a".to_vec()],
            ..Default::default()
        };
        let pb = time_to_live_to_pb(ttl);
        assert_eq!((pb.id, pb.ttl, pb.keys.len()), (7, -1, 1));
        let list = leases_to_pb(LeaseLeasesResponse { ids: vec![1, 2], ..Default::default() });
        assert_eq!(list.leases.iter().map(|l| l.id).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn client_side_conversions_round_trip_through_the_gateway_side() {
        let grant = LeaseGrantRequest { ttl: 30, id: 9 };
        assert_eq!(grant_from_pb(grant_to_pb_request(grant.clone())), grant);
        assert_eq!(revoke_from_pb(revoke_to_pb_request(LeaseRevokeRequest { id: 9 })).id, 9);
        let renew = keep_alive_from_pb(keep_alive_to_pb_request(LeaseKeepAliveRequest { id: 9 }));
        assert_eq!(renew.id, 9);
        let answer = LeaseKeepAliveResponse { id: 9, ttl: 30, ..Default::default() };
        assert_eq!(keep_alive_from_pb_response(keep_alive_to_pb(answer.clone())), answer);
        let revoked = LeaseRevokeResponse::default();
        assert_eq!(revoke_from_pb_response(revoke_to_pb(revoked.clone())), revoked);
        let list = LeaseLeasesResponse { ids: vec![3, 4], ..Default::default() };
        assert_eq!(leases_from_pb_response(leases_to_pb(list.clone())), list);
    }
}
