//! `user`, `role` and `auth` (decision D21), as etcdctl 3.4's `ctlv3/command/user_command.go`,
//! `role_command.go` and `auth_command.go`: their argument checks, and the simple printer's
//! lines ("User root created", "Role app updated", "Authentication Enabled", ...).

use super::{CtlIo, Session};
use crate::ctl::args::{AuthCommand, RoleCommand, UserCommand};
use crate::ctl::client::{Connector, KvClient};
use crate::ctl::error::CtlError;
use atoll_proto::auth::{AuthRequest, AuthResponse, Permission, PermissionType, ROOT_ROLE};
use atoll_proto::{AtollError, prefix_range_end};

impl<C: Connector> Session<'_, C> {
    async fn auth_request(&self, req: AuthRequest) -> Result<AuthResponse, CtlError> {
        let client = self.connect(&self.endpoints).await?;
        self.request(client.auth(req)).await
    }

    pub(super) async fn user(&self, cmd: &UserCommand, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        match cmd {
            UserCommand::Add { args, new_user_password, interactive, no_password } => {
                let [arg] = args.as_slice() else {
                    return Err(CtlError::bad_args(
                        "user add command requires user name as its argument",
                    ));
                };
                let (name, password) = match (arg.split_once(':'), *no_password) {
                    (_, true) => (arg.clone(), String::new()),
                    (Some((name, password)), false) => (name.to_string(), password.to_string()),
                    (None, false) => match new_user_password {
                        Some(p) => (arg.clone(), p.clone()),
                        None => (arg.clone(), read_password(io, *interactive)?),
                    },
                };
                let req = AuthRequest::UserAdd {
                    name: name.clone(),
                    password,
                    hashed_password: String::new(),
                    no_password: *no_password,
                };
                self.auth_request(req).await?;
                writeln!(io.stdout, "User {name} created")?;
            }
            UserCommand::Get { args, detail } => {
                let name = one(args, "user get command requires user name as its argument")?;
                let resp = self.auth_request(AuthRequest::UserGet { name: name.clone() }).await?;
                writeln!(io.stdout, "User: {name}")?;
                if *detail {
                    for role in &resp.roles {
                        let perms = self.auth_request(AuthRequest::RoleGet { role: role.clone() });
                        print_role(io, role, &perms.await?.permissions)?;
                    }
                } else {
                    let roles: String = resp.roles.iter().map(|r| format!(" {r}")).collect();
                    writeln!(io.stdout, "Roles:{roles}")?;
                }
            }
            UserCommand::List => {
                for user in self.auth_request(AuthRequest::UserList).await?.users {
                    writeln!(io.stdout, "{user}")?;
                }
            }
            UserCommand::Delete { args } => {
                let name = one(args, "user delete command requires user name as its argument")?;
                self.auth_request(AuthRequest::UserDelete { name: name.clone() }).await?;
                writeln!(io.stdout, "User {name} deleted")?;
            }
            UserCommand::Passwd { args, interactive } => {
                let name = one(args, "user passwd command requires user name as its argument")?;
                let password = read_password(io, *interactive)?;
                let req = AuthRequest::UserChangePassword {
                    name: name.clone(),
                    password,
                    hashed_password: String::new(),
                };
                self.auth_request(req).await?;
                writeln!(io.stdout, "Password updated")?;
            }
            UserCommand::GrantRole { args } => {
                let [user, role] = args.as_slice() else {
                    return Err(CtlError::bad_args(
                        "user grant command requires user name and role name as its argument",
                    ));
                };
                let req = AuthRequest::UserGrantRole { user: user.clone(), role: role.clone() };
                self.auth_request(req).await?;
                writeln!(io.stdout, "Role {role} is granted to user {user}")?;
            }
            UserCommand::RevokeRole { args } => {
                let [user, role] = args.as_slice() else {
                    return Err(CtlError::bad_args(
                        "user revoke-role requires user name and role name as its argument",
                    ));
                };
                let req = AuthRequest::UserRevokeRole { user: user.clone(), role: role.clone() };
                self.auth_request(req).await?;
                writeln!(io.stdout, "Role {role} is revoked from user {user}")?;
            }
        }
        Ok(())
    }

    pub(super) async fn role(&self, cmd: &RoleCommand, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        match cmd {
            RoleCommand::Add { args } => {
                let name = one(args, "role add command requires role name as its argument")?;
                self.auth_request(AuthRequest::RoleAdd { name: name.clone() }).await?;
                writeln!(io.stdout, "Role {name} created")?;
            }
            RoleCommand::Get { args } => {
                let role = one(args, "role get command requires role name as its argument")?;
                let resp = self.auth_request(AuthRequest::RoleGet { role: role.clone() }).await?;
                print_role(io, role, &resp.permissions)?;
            }
            RoleCommand::List => {
                for role in self.auth_request(AuthRequest::RoleList).await?.roles {
                    writeln!(io.stdout, "{role}")?;
                }
            }
            RoleCommand::Delete { args } => {
                let role = one(args, "role delete command requires role name as its argument")?;
                self.auth_request(AuthRequest::RoleDelete { role: role.clone() }).await?;
                writeln!(io.stdout, "Role {role} deleted")?;
            }
            RoleCommand::GrantPermission { args, range } => {
                let (role, perm_type, rest) = match args.as_slice() {
                    [role, perm_type, rest @ ..] if matches!(rest.len(), 1 | 2) => {
                        (role, perm_type, rest)
                    }
                    _ => {
                        return Err(CtlError::bad_args(
                            "role grant command requires role name, permission type, and key [endkey] as its argument",
                        ));
                    }
                };
                let perm_type = permission_type(perm_type)?;
                let (key, range_end) = permission_range(rest, range.prefix, range.from_key)?;
                let permission = Permission { perm_type, key, range_end };
                let req = AuthRequest::RoleGrantPermission { role: role.clone(), permission };
                self.auth_request(req).await?;
                writeln!(io.stdout, "Role {role} updated")?;
            }
            RoleCommand::RevokePermission { args, range } => {
                let (role, rest) = match args.as_slice() {
                    [role, rest @ ..] if matches!(rest.len(), 1 | 2) => (role, rest),
                    _ => {
                        return Err(CtlError::bad_args(
                            "role revoke-permission command requires role name and key [endkey] as its argument",
                        ));
                    }
                };
                let (key, range_end) = permission_range(rest, range.prefix, range.from_key)?;
                let req = AuthRequest::RoleRevokePermission {
                    role: role.clone(),
                    key: key.clone(),
                    range_end: range_end.clone(),
                };
                self.auth_request(req).await?;
                let key = String::from_utf8_lossy(&key);
                if range_end.is_empty() {
                    writeln!(io.stdout, "Permission of key {key} is revoked from role {role}")?;
                } else if range_end == [0] {
                    writeln!(
                        io.stdout,
                        "Permission of range [{key}, <open ended> is revoked from role {role}"
                    )?;
                } else {
                    let end = String::from_utf8_lossy(&range_end);
                    writeln!(
                        io.stdout,
                        "Permission of range [{key}, {end}) is revoked from role {role}"
                    )?;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn auth(&self, cmd: &AuthCommand, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        match cmd {
            AuthCommand::Enable => {
                // etcdctl creates the root role and grants it to root when only that is
                // missing, then enables again.
                let first = self.auth_request(AuthRequest::Enable).await;
                if let Err(e) = first {
                    if !is_server_error(&e, &AtollError::RootRoleNotExist) {
                        return Err(e);
                    }
                    self.auth_request(AuthRequest::RoleAdd { name: ROOT_ROLE.into() }).await?;
                    let grant = AuthRequest::UserGrantRole {
                        user: atoll_proto::auth::ROOT_USER.into(),
                        role: ROOT_ROLE.into(),
                    };
                    self.auth_request(grant).await?;
                    self.auth_request(AuthRequest::Enable).await?;
                }
                writeln!(io.stdout, "Authentication Enabled")?;
            }
            AuthCommand::Disable => {
                self.auth_request(AuthRequest::Disable).await?;
                writeln!(io.stdout, "Authentication Disabled")?;
            }
            AuthCommand::Status => {
                let resp = self.auth_request(AuthRequest::Status).await?;
                writeln!(io.stdout, "Authentication Status: {}", resp.enabled)?;
                writeln!(io.stdout, "AuthRevision: {}", resp.auth_revision)?;
            }
        }
        Ok(())
    }
}

fn one<'a>(args: &'a [String], message: &str) -> Result<&'a String, CtlError> {
    match args {
        [one] => Ok(one),
        _ => Err(CtlError::bad_args(message)),
    }
}

/// Whether `e` is the server's answer `wanted` (by etcd's text, as clientv3 compares).
fn is_server_error(e: &CtlError, wanted: &AtollError) -> bool {
    e.to_string().contains(&wanted.to_string())
}

/// A password from standard input, the first line (etcdctl's `--interactive=false`; with no
/// terminal prompt here, an interactive run reads the same line).
fn read_password(io: &mut CtlIo<'_>, _interactive: bool) -> Result<String, CtlError> {
    let mut line = String::new();
    io.stdin.read_line(&mut line).map_err(|source| CtlError::Stdin { source })?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(CtlError::bad_args(
            "password not given; pass --new-user-password or write it to standard input",
        ));
    }
    Ok(password)
}

fn permission_type(text: &str) -> Result<PermissionType, CtlError> {
    match text.to_ascii_uppercase().as_str() {
        "READ" => Ok(PermissionType::Read),
        "WRITE" => Ok(PermissionType::Write),
        "READWRITE" => Ok(PermissionType::ReadWrite),
        _ => Err(CtlError::bad_args(format!("invalid permission type {text}"))),
    }
}

/// etcdctl's `permRange`: one key, `[key, endkey)`, a prefix, or every key from `key` on.
fn permission_range(
    rest: &[String],
    prefix: bool,
    from_key: bool,
) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
    let key = rest[0].as_bytes().to_vec();
    match (rest.get(1), prefix, from_key) {
        (Some(_), true, _) | (Some(_), _, true) => {
            Err(CtlError::bad_args("unexpected endkey argument with --prefix or --from-key"))
        }
        (_, true, true) => {
            Err(CtlError::bad_args("--from-key and --prefix flags are mutually exclusive"))
        }
        (Some(end), false, false) => Ok((key, end.as_bytes().to_vec())),
        (None, true, false) if key.is_empty() => Ok((key, vec![0])),
        (None, true, false) => {
            let end = prefix_range_end(&key);
            Ok((key, end))
        }
        (None, false, true) => Ok((key, vec![0])),
        (None, false, false) => Ok((key, Vec::new())),
    }
}

/// etcdctl's simple printer for a role: read then write permissions, a range as
/// `[key, end)`, an open end as `<open ended>`, a prefix noted.
fn print_role(io: &mut CtlIo<'_>, role: &str, perms: &[Permission]) -> Result<(), CtlError> {
    writeln!(io.stdout, "Role {role}")?;
    for (title, access) in
        [("KV Read:", PermissionType::Read), ("KV Write:", PermissionType::Write)]
    {
        writeln!(io.stdout, "{title}")?;
        for p in perms.iter().filter(|p| p.perm_type.allows(access)) {
            let key = String::from_utf8_lossy(&p.key);
            if p.range_end.is_empty() {
                writeln!(io.stdout, "\t{key}")?;
                continue;
            }
            let mut line = if p.range_end == [0] {
                format!("\t[{key}, <open ended>")
            } else {
                format!("\t[{key}, {})", String::from_utf8_lossy(&p.range_end))
            };
            if prefix_range_end(&p.key) == p.range_end {
                line.push_str(&format!(" (prefix {key})"));
            }
            writeln!(io.stdout, "{line}")?;
        }
    }
    Ok(())
}
