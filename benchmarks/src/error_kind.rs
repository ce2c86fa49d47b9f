//! Names failed operations by kind for the `errors` map of a report: `server_busy`,
//! `server_no_leader`, `timeout`, `transport`… Stable across runs (no addresses or counts in
//! the name), so reports can be compared.

use atoll_router::ClientError;

/// The kind of a client error: `server_<error>` for an answer of the server, else the client
/// error's own kind.
pub fn error_kind(error: &ClientError) -> String {
    // The names come from the Debug form of the variant, so new variants in the client or the
    // protocol get a sensible name without a change here.
    match error {
        ClientError::Server(server) => format!("server_{}", snake_case(&variant_name(server))),
        other => snake_case(&variant_name(other)),
    }
}

/// The variant name at the start of a value's Debug form (`Busy { limit: .. }` → `Busy`).
fn variant_name(value: &dyn std::fmt::Debug) -> String {
    let mut text = format!("{value:?}");
    let end = text.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(text.len());
    text.truncate(end);
    text
}

/// `NotLeader` → `not_leader`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::{AtollError, ShardId};
    use std::time::Duration;

    #[test]
    fn kinds_name_the_variant_without_details() {
        let busy = ClientError::Server(AtollError::Busy { limit: "queue".into() });
        assert_eq!(error_kind(&busy), "server_busy");
        let no_leader = ClientError::Server(AtollError::NoLeader { shard: ShardId(1) });
        assert_eq!(error_kind(&no_leader), "server_no_leader");
        assert_eq!(error_kind(&ClientError::Server(AtollError::Timeout)), "server_timeout");
        let timeout = ClientError::Timeout { after: Duration::from_secs(1) };
        assert_eq!(error_kind(&timeout), "timeout");
        let connect = ClientError::Connect { endpoint: "x".into(), reason: "y".into() };
        assert_eq!(error_kind(&connect), "connect");
    }

    #[test]
    fn snake_case_splits_words() {
        assert_eq!(snake_case("NotLeader"), "not_leader");
        assert_eq!(snake_case("Busy"), "busy");
        assert_eq!(snake_case(""), "");
    }
}
