//! `member add | remove | update | list | promote`, as etcdctl 3.4's
//! `ctlv3/command/member_command.go`: its argument checks, messages and simple output
//! (`%16x` IDs, the `ETCD_*` lines after an add), and etcd's JSON shape with `-w json`.

use super::{CtlIo, Session};
use crate::ctl::args::{MemberCommand, OutputFormat};
use crate::ctl::client::{Connector, KvClient};
use crate::ctl::error::CtlError;
use crate::ctl::json;
use atoll_proto::member::{
    MemberAddRequest, MemberIdRequest, MemberListRequest, MemberUpdateRequest, MembersResponse,
};
use atoll_proto::{NativeRequest, NodeId};

impl<C: Connector> Session<'_, C> {
    pub(super) async fn member(
        &self,
        cmd: &MemberCommand,
        io: &mut CtlIo<'_>,
    ) -> Result<(), CtlError> {
        match cmd {
            MemberCommand::Add { args, peer_urls, learner } => {
                let [name] = args.as_slice() else {
                    return Err(CtlError::bad_args("member name not provided"));
                };
                let peer_urls = urls(peer_urls, "member peer urls not provided")?;
                let req = MemberAddRequest { peer_urls, is_learner: *learner };
                let resp = self.members(NativeRequest::MemberAdd(req)).await?;
                self.print_added(name, &resp, io)
            }
            MemberCommand::Remove { args } => {
                let id = member_id_arg(args, "member ID is not provided")?;
                let req = NativeRequest::MemberRemove(MemberIdRequest { id });
                let resp = self.members(req).await?;
                self.print_changed(id, "removed from", &resp, io)
            }
            MemberCommand::Update { args, peer_urls } => {
                let id = member_id_arg(args, "member ID is not provided")?;
                let peer_urls = urls(peer_urls, "member peer urls not provided")?;
                let req = NativeRequest::MemberUpdate(MemberUpdateRequest { id, peer_urls });
                let resp = self.members(req).await?;
                self.print_changed(id, "updated in", &resp, io)
            }
            MemberCommand::Promote { args } => {
                let id = member_id_arg(args, "member ID is not provided")?;
                let req = NativeRequest::MemberPromote(MemberIdRequest { id });
                let resp = self.members(req).await?;
                self.print_changed(id, "promoted in", &resp, io)
            }
            MemberCommand::List => {
                let req = NativeRequest::MemberList(MemberListRequest::default());
                let resp = self.members(req).await?;
                match self.format {
                    OutputFormat::Simple => {
                        for m in &resp.members {
                            let status = if m.name.is_empty() { "unstarted" } else { "started" };
                            writeln!(
                                io.stdout,
                                "{:x}, {status}, {}, {}, {}, {}",
                                m.id.0,
                                m.name,
                                m.peer_urls.join(","),
                                m.client_urls.join(","),
                                m.is_learner
                            )?;
                        }
                    }
                    OutputFormat::Json => writeln!(io.stdout, "{}", json::members(&resp))?,
                }
                Ok(())
            }
        }
    }

    async fn members(&self, req: NativeRequest) -> Result<MembersResponse, CtlError> {
        let client = self.connect(&self.endpoints).await?;
        self.request(client.members(req)).await
    }

    fn print_added(
        &self,
        name: &str,
        resp: &MembersResponse,
        io: &mut CtlIo<'_>,
    ) -> Result<(), CtlError> {
        let Some(added) = &resp.member else {
            return Err(CtlError::Request { message: "the answer names no added member".into() });
        };
        if self.format == OutputFormat::Json {
            writeln!(io.stdout, "{}", json::members(resp))?;
            return Ok(());
        }
        writeln!(
            io.stdout,
            "Member {:16x} added to cluster {:16x}",
            added.id.0, resp.header.cluster_id
        )?;
        let mut conf = Vec::new();
        for m in &resp.members {
            let n = if m.id == added.id { name } else { m.name.as_str() };
            conf.extend(m.peer_urls.iter().map(|u| format!("{n}={u}")));
        }
        writeln!(io.stdout)?;
        writeln!(io.stdout, "ETCD_NAME={name:?}")?;
        writeln!(io.stdout, "ETCD_INITIAL_CLUSTER={:?}", conf.join(","))?;
        writeln!(io.stdout, "ETCD_INITIAL_ADVERTISE_PEER_URLS={:?}", added.peer_urls.join(","))?;
        writeln!(io.stdout, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"")?;
        Ok(())
    }

    fn print_changed(
        &self,
        id: NodeId,
        how: &str,
        resp: &MembersResponse,
        io: &mut CtlIo<'_>,
    ) -> Result<(), CtlError> {
        match self.format {
            OutputFormat::Simple => writeln!(
                io.stdout,
                "Member {:16x} {how} cluster {:16x}",
                id.0, resp.header.cluster_id
            )?,
            OutputFormat::Json => writeln!(io.stdout, "{}", json::members(resp))?,
        }
        Ok(())
    }
}

/// A member ID argument in hexadecimal, with etcdctl's messages.
fn member_id_arg(args: &[String], missing: &str) -> Result<NodeId, CtlError> {
    let [id] = args else { return Err(CtlError::bad_args(missing)) };
    u64::from_str_radix(id, 16).map(NodeId).map_err(|_| {
        CtlError::bad_args(format!(
            "bad member ID arg (strconv.ParseUint: parsing {id:?}: invalid syntax), expecting ID in Hex"
        ))
    })
}

fn urls(list: &str, missing: &str) -> Result<Vec<String>, CtlError> {
    let urls: Vec<String> =
        list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
    if urls.is_empty() { Err(CtlError::bad_args(missing)) } else { Ok(urls) }
}
