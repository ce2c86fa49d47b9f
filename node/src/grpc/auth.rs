//! `etcdserverpb.Auth` for a cluster whose auth is disabled and whose auth store is empty,
//! answered as etcd answers in that state: status says disabled, Authenticate fails with
//! "authentication is not enabled", enabling fails because no root user exists, lists are
//! empty and every lookup of a user or role finds none. Creating users and roles needs an
//! auth store, which Atoll does not have yet; those calls are refused with a clear error.

use super::{Gateway, not_supported};
use atoll_proto::etcd::etcdserverpb as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Auth service.
pub(super) struct AuthService(pub(super) Arc<Gateway>);

fn auth_not_enabled() -> Status {
    Status::failed_precondition("etcdserver: authentication is not enabled")
}

fn root_user_not_exist() -> Status {
    Status::failed_precondition("etcdserver: root user does not exist")
}

fn user_not_found() -> Status {
    Status::failed_precondition("etcdserver: user name not found")
}

fn role_not_found() -> Status {
    Status::failed_precondition("etcdserver: role name not found")
}

fn user_empty() -> Status {
    Status::invalid_argument("etcdserver: user name is empty")
}

fn role_empty() -> Status {
    Status::invalid_argument("etcdserver: role name is empty")
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn auth_enable(
        &self,
        _: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(root_user_not_exist())
    }

    async fn auth_disable(
        &self,
        _: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        // Disabling disabled auth succeeds in etcd.
        Ok(Response::new(pb::AuthDisableResponse { header: self.0.header() }))
    }

    async fn auth_status(
        &self,
        _: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let header = self.0.header();
        Ok(Response::new(pb::AuthStatusResponse { header, enabled: false, auth_revision: 0 }))
    }

    async fn authenticate(
        &self,
        _: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_add(
        &self,
        req: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        if req.get_ref().name.is_empty() {
            return Err(user_empty());
        }
        Err(not_supported("UserAdd"))
    }

    async fn user_get(
        &self,
        _: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_list(
        &self,
        _: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let header = self.0.header();
        Ok(Response::new(pb::AuthUserListResponse { header, users: vec![] }))
    }

    async fn user_delete(
        &self,
        _: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_change_password(
        &self,
        _: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_grant_role(
        &self,
        _: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_revoke_role(
        &self,
        _: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(user_not_found())
    }

    async fn role_add(
        &self,
        req: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        if req.get_ref().name.is_empty() {
            return Err(role_empty());
        }
        Err(not_supported("RoleAdd"))
    }

    async fn role_get(
        &self,
        _: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(role_not_found())
    }

    async fn role_list(
        &self,
        _: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let header = self.0.header();
        Ok(Response::new(pb::AuthRoleListResponse { header, roles: vec![] }))
    }

    async fn role_delete(
        &self,
        _: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(role_not_found())
    }

    async fn role_grant_permission(
        &self,
        _: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(role_not_found())
    }

    async fn role_revoke_permission(
        &self,
        _: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(role_not_found())
    }
}
