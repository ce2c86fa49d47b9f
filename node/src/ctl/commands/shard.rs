//! `shard list`: the shard map the meta shard holds (decision D23), one line per data shard
//! (`<id>, <start>, <end>, <leader>, <epoch>, <map version>`; keys quoted with Rust's
//! escapes for bytes that are not printable, an unbounded end as `+inf`, the leader as a
//! member ID in hexadecimal like `member list`, 0 while none is known, the epoch as
//! `range_version.conf_version`), or JSON with `-w json`.

use super::{CtlIo, Session};
use crate::ctl::args::{OutputFormat, ShardCommand};
use crate::ctl::client::{Connector, KvClient};
use crate::ctl::error::CtlError;
use crate::ctl::json;
use atoll_proto::shard_map::{ShardMapRequest, ShardMapResponse};

impl<C: Connector> Session<'_, C> {
    pub(super) async fn shard(
        &self,
        cmd: &ShardCommand,
        io: &mut CtlIo<'_>,
    ) -> Result<(), CtlError> {
        match cmd {
            ShardCommand::List => {
                let client = self.connect(&self.endpoints).await?;
                let req = ShardMapRequest { linearizable: true };
                let resp = self.request(client.shard_map(req)).await?;
                match self.format {
                    OutputFormat::Simple => io.stdout.write_all(shard_lines(&resp).as_bytes())?,
                    OutputFormat::Json => writeln!(io.stdout, "{}", json::shard_map(&resp))?,
                }
                Ok(())
            }
        }
    }
}

/// The simple output of `shard list`.
pub(crate) fn shard_lines(resp: &ShardMapResponse) -> String {
    let quoted = |key: &[u8]| format!("\"{}\"", key.escape_ascii());
    let mut out = String::new();
    for (i, s) in resp.map.shards.iter().enumerate() {
        let leader = resp.leaders.get(i).map_or(0, |l| l.0);
        let end = if s.end.is_empty() { "+inf".to_string() } else { quoted(&s.end) };
        out.push_str(&format!(
            "{}, {}, {end}, {leader:x}, {}.{}, {}\n",
            s.id.0,
            quoted(&s.start),
            s.epoch.range_version,
            s.epoch.conf_version,
            resp.map.version
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::shard_map::{Epoch, ShardDescriptor, ShardMap};
    use atoll_proto::{NodeId, ShardId};

    #[test]
    fn one_line_per_shard_with_range_leader_epoch_and_version() {
        let shard = |id, start: &[u8], end: &[u8]| ShardDescriptor {
            id: ShardId(id),
            start: start.to_vec(),
            end: end.to_vec(),
            epoch: Epoch { range_version: 1, conf_version: 2 },
            replicas: Vec::new(),
        };
        let resp = ShardMapResponse {
            map: ShardMap {
                version: 3,
                shards: vec![
                    shard(1, b"", b"/r/"),
                    shard(2, b"/r/", b"/r0\xff"),
                    shard(3, b"/r0\xff", b""),
                ],
            },
            leaders: vec![NodeId(0xabc), NodeId(0), NodeId(0x8e9e05c52164694d)],
            ..ShardMapResponse::default()
        };
        assert_eq!(
            shard_lines(&resp),
            "1, \"\", \"/r/\", abc, 1.2, 3\n\
             2, \"/r/\", \"/r0\\xff\", 0, 1.2, 3\n\
             3, \"/r0\\xff\", +inf, 8e9e05c52164694d, 1.2, 3\n"
        );
        let json = json::shard_map(&resp);
        assert!(json.starts_with("{\"header\":{},\"version\":3,\"shards\":[{\"ID\":1,\"end\":\"L3Iv\",\"leader\":2748,"), "{json}");
    }
}
