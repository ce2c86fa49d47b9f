//! `etcdserverpb.Auth`: every RPC, converted to the native auth requests and served by the
//! node's request service (decision D21): changes through the meta shard's leader, reads and
//! Authenticate on this node after a read index of the meta shard.

use super::{Gateway, caller_of, unexpected};
use atoll_proto::auth::{AuthRequest, AuthResponse, Permission, PermissionType};
use atoll_proto::etcd::authpb;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::{NativeRequest, NativeResponse};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Auth service.
pub(super) struct AuthService(pub(super) Arc<Gateway>);

impl AuthService {
    /// Serves `native` for the caller of `req`; the answer's header in etcd's form too.
    async fn auth<T>(
        &self,
        req: &Request<T>,
        native: AuthRequest,
    ) -> Result<(Option<pb::ResponseHeader>, AuthResponse), Status> {
        match self.0.call(&caller_of(req), NativeRequest::Auth(native)).await? {
            NativeResponse::Auth(r) => {
                Ok((atoll_proto::etcd_convert::response::header_to_pb(r.header.clone()), r))
            }
            other => Err(unexpected(&other)),
        }
    }
}

/// etcd's permission type numbers (READ 0, WRITE 1, READWRITE 2).
pub fn permission_from_pb(p: authpb::Permission) -> Result<Permission, Status> {
    let perm_type = match p.perm_type {
        0 => PermissionType::Read,
        1 => PermissionType::Write,
        2 => PermissionType::ReadWrite,
        other => {
            return Err(Status::invalid_argument(format!(
                "atoll: malformed request: unknown permission type {other}"
            )));
        }
    };
    Ok(Permission { perm_type, key: p.key, range_end: p.range_end })
}

fn permission_to_pb(p: Permission) -> authpb::Permission {
    let perm_type = match p.perm_type {
        PermissionType::Read => 0,
        PermissionType::Write => 1,
        PermissionType::ReadWrite => 2,
    };
    authpb::Permission { perm_type, key: p.key, range_end: p.range_end }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn auth_enable(
        &self,
        req: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let (header, _) = self.auth(&req, AuthRequest::Enable).await?;
        Ok(Response::new(pb::AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        req: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let (header, _) = self.auth(&req, AuthRequest::Disable).await?;
        Ok(Response::new(pb::AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        req: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let (header, r) = self.auth(&req, AuthRequest::Status).await?;
        let (enabled, auth_revision) = (r.enabled, r.auth_revision);
        Ok(Response::new(pb::AuthStatusResponse { header, enabled, auth_revision }))
    }

    async fn authenticate(
        &self,
        req: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let pb::AuthenticateRequest { name, password } = req.get_ref().clone();
        let (header, r) = self.auth(&req, AuthRequest::Authenticate { name, password }).await?;
        Ok(Response::new(pb::AuthenticateResponse { header, token: r.token }))
    }

    async fn user_add(
        &self,
        req: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let r = req.get_ref().clone();
        let no_password = r.options.is_some_and(|o| o.no_password);
        let native = AuthRequest::UserAdd {
            name: r.name,
            password: r.password,
            hashed_password: r.hashed_password,
            no_password,
        };
        let (header, _) = self.auth(&req, native).await?;
        Ok(Response::new(pb::AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        req: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let name = req.get_ref().name.clone();
        let (header, r) = self.auth(&req, AuthRequest::UserGet { name }).await?;
        Ok(Response::new(pb::AuthUserGetResponse { header, roles: r.roles }))
    }

    async fn user_list(
        &self,
        req: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let (header, r) = self.auth(&req, AuthRequest::UserList).await?;
        Ok(Response::new(pb::AuthUserListResponse { header, users: r.users }))
    }

    async fn user_delete(
        &self,
        req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let name = req.get_ref().name.clone();
        let (header, _) = self.auth(&req, AuthRequest::UserDelete { name }).await?;
        Ok(Response::new(pb::AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let r = req.get_ref().clone();
        let native = AuthRequest::UserChangePassword {
            name: r.name,
            password: r.password,
            hashed_password: r.hashed_password,
        };
        let (header, _) = self.auth(&req, native).await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let pb::AuthUserGrantRoleRequest { user, role } = req.get_ref().clone();
        let (header, _) = self.auth(&req, AuthRequest::UserGrantRole { user, role }).await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let pb::AuthUserRevokeRoleRequest { name, role } = req.get_ref().clone();
        let native = AuthRequest::UserRevokeRole { user: name, role };
        let (header, _) = self.auth(&req, native).await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        req: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let name = req.get_ref().name.clone();
        let (header, _) = self.auth(&req, AuthRequest::RoleAdd { name }).await?;
        Ok(Response::new(pb::AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        req: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let role = req.get_ref().role.clone();
        let (header, r) = self.auth(&req, AuthRequest::RoleGet { role }).await?;
        let perm = r.permissions.into_iter().map(permission_to_pb).collect();
        Ok(Response::new(pb::AuthRoleGetResponse { header, perm }))
    }

    async fn role_list(
        &self,
        req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let (header, r) = self.auth(&req, AuthRequest::RoleList).await?;
        Ok(Response::new(pb::AuthRoleListResponse { header, roles: r.roles }))
    }

    async fn role_delete(
        &self,
        req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let role = req.get_ref().role.clone();
        let (header, _) = self.auth(&req, AuthRequest::RoleDelete { role }).await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let r = req.get_ref().clone();
        // etcd's gateway refuses a grant without a permission.
        let perm =
            r.perm.ok_or_else(|| Status::invalid_argument("etcdserver: permission not given"))?;
        let native = AuthRequest::RoleGrantPermission {
            role: r.name,
            permission: permission_from_pb(perm)?,
        };
        let (header, _) = self.auth(&req, native).await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let pb::AuthRoleRevokePermissionRequest { role, key, range_end } = req.get_ref().clone();
        let native = AuthRequest::RoleRevokePermission { role, key, range_end };
        let (header, _) = self.auth(&req, native).await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse { header }))
    }
}
