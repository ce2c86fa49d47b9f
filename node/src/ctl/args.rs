//! atollctl's command line, declared with clap and named like etcdctl v3.4's flags.
//!
//! Positional arguments are taken as a list and checked by [`crate::ctl::requests`], so a
//! missing key gets etcdctl's own message ("get command needs one argument as key and an
//! optional argument as range_end") rather than a generic one. They are `OsString`s because
//! keys are bytes: a txn line such as `put "\xff" v` yields a non-UTF-8 argument.

use crate::ctl::go_fmt::parse_duration;
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The whole command line: global flags and one command.
#[derive(Debug, Parser)]
#[command(
    name = "atollctl",
    version,
    about = "A simple command line client for Atoll, compatible with etcdctl v3.4.",
    propagate_version = true
)]
pub struct Cli {
    /// Flags accepted before or after any command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Global flags; each can also be set through an `ATOLLCTL_<FLAG>` environment variable,
/// as etcdctl reads `ETCDCTL_<FLAG>` (booleans accept `true`/`1`/`yes`/`on` and their
/// opposites, like Go's `strconv.ParseBool`).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Endpoints (host:port), comma separated.
    #[arg(
        long,
        global = true,
        env = "ATOLLCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Output format: simple or json.
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        env = "ATOLLCTL_WRITE_OUT",
        value_enum,
        default_value_t = OutputFormat::Simple
    )]
    pub write_out: OutputFormat,
    /// Verify the server certificate with this CA bundle (PEM).
    #[arg(long, global = true, env = "ATOLLCTL_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate (insecure: for tests only).
    #[arg(
        long = "insecure-skip-tls-verify",
        global = true,
        env = "ATOLLCTL_INSECURE_SKIP_TLS_VERIFY",
        value_parser = BoolishValueParser::new()
    )]
    pub insecure_skip_tls_verify: bool,
    /// Dial timeout for client connections.
    #[arg(
        long = "dial-timeout",
        global = true,
        env = "ATOLLCTL_DIAL_TIMEOUT",
        default_value = "2s",
        value_parser = parse_duration
    )]
    pub dial_timeout: Duration,
    /// Timeout for short running commands (excluding dial timeout).
    #[arg(
        long = "command-timeout",
        global = true,
        env = "ATOLLCTL_COMMAND_TIMEOUT",
        default_value = "5s",
        value_parser = parse_duration
    )]
    pub command_timeout: Duration,
    /// Data directory of a local node, where its development CA can be found.
    #[arg(long = "data-dir", global = true, env = "ATOLLCTL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Username[:password] for authentication (prompt if password is not supplied).
    #[arg(long, global = true, env = "ATOLLCTL_USER")]
    pub user: Option<String>,
    /// Password for authentication (if this option is used, --user option shouldn't
    /// include password).
    #[arg(long, global = true, env = "ATOLLCTL_PASSWORD")]
    pub password: Option<String>,
    /// Print byte strings as hex encoded strings.
    #[arg(long, global = true, env = "ATOLLCTL_HEX", value_parser = BoolishValueParser::new())]
    pub hex: bool,
}

/// `--write-out` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// etcdctl's default line-oriented output.
    Simple,
    /// etcd's JSON encoding of the response.
    Json,
}

/// atollctl's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Puts the given key into the store (value from stdin if not given).
    #[command(override_usage = "atollctl put [OPTIONS] <key> <value>")]
    Put(PutArgs),
    /// Gets the key or a range of keys.
    #[command(override_usage = "atollctl get [OPTIONS] <key> [range_end]")]
    Get(GetArgs),
    /// Removes the specified key or range of keys [key, range_end).
    #[command(override_usage = "atollctl del [OPTIONS] <key> [range_end]")]
    Del(DelArgs),
    /// Txn processes all the requests in one transaction, read from stdin.
    Txn(TxnArgs),
    /// Compacts the event history.
    #[command(override_usage = "atollctl compaction [OPTIONS] <revision>")]
    Compaction(CompactionArgs),
    /// Endpoint related commands.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Watches events stream on keys or prefixes.
    #[command(override_usage = "atollctl watch [OPTIONS] <key or prefix> [range_end]")]
    Watch(WatchArgs),
    /// Lease related commands.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Membership related commands.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Shard map related commands (Atoll's own; etcd has no shards).
    #[command(subcommand)]
    Shard(ShardCommand),
    /// User related commands.
    #[command(subcommand)]
    User(UserCommand),
    /// Role related commands.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Enable or disable authentication.
    #[command(subcommand)]
    Auth(AuthCommand),
}

/// `user <subcommand>`, as etcdctl 3.4's. Arguments are checked by the command, so a
/// missing one gets etcdctl's own message.
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Adds a new user.
    #[command(override_usage = "atollctl user add <user name or user:password> [options]")]
    Add {
        /// <user name> or <user:password>.
        #[arg(value_name = "USER")]
        args: Vec<String>,
        /// Supply password from the command line flag.
        #[arg(long = "new-user-password")]
        new_user_password: Option<String>,
        /// Read the password from standard input instead of a prompt.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        interactive: bool,
        /// Create a user without password (it cannot authenticate by password).
        #[arg(long = "no-password")]
        no_password: bool,
    },
    /// Gets detailed information of a user.
    #[command(override_usage = "atollctl user get <user name> [options]")]
    Get {
        /// <user name>.
        #[arg(value_name = "USER")]
        args: Vec<String>,
        /// Show permissions of roles granted to the user.
        #[arg(long)]
        detail: bool,
    },
    /// Lists all users.
    List,
    /// Deletes a user.
    #[command(override_usage = "atollctl user delete <user name>")]
    Delete {
        /// <user name>.
        #[arg(value_name = "USER")]
        args: Vec<String>,
    },
    /// Changes password of user.
    #[command(override_usage = "atollctl user passwd <user name> [options]")]
    Passwd {
        /// <user name>.
        #[arg(value_name = "USER")]
        args: Vec<String>,
        /// Read the password from standard input instead of a prompt.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        interactive: bool,
    },
    /// Grants a role to a user.
    #[command(
        name = "grant-role",
        override_usage = "atollctl user grant-role <user name> <role name>"
    )]
    GrantRole {
        /// <user name> <role name>.
        #[arg(value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Revokes a role from a user.
    #[command(
        name = "revoke-role",
        override_usage = "atollctl user revoke-role <user name> <role name>"
    )]
    RevokeRole {
        /// <user name> <role name>.
        #[arg(value_name = "ARGS")]
        args: Vec<String>,
    },
}

/// `role <subcommand>`, as etcdctl 3.4's.
#[derive(Debug, Clone, Subcommand)]
pub enum RoleCommand {
    /// Adds a new role.
    #[command(override_usage = "atollctl role add <role name>")]
    Add {
        /// <role name>.
        #[arg(value_name = "ROLE")]
        args: Vec<String>,
    },
    /// Gets detailed information of a role.
    #[command(override_usage = "atollctl role get <role name>")]
    Get {
        /// <role name>.
        #[arg(value_name = "ROLE")]
        args: Vec<String>,
    },
    /// Lists all roles.
    List,
    /// Deletes a role.
    #[command(override_usage = "atollctl role delete <role name>")]
    Delete {
        /// <role name>.
        #[arg(value_name = "ROLE")]
        args: Vec<String>,
    },
    /// Grants a key to a role.
    #[command(
        name = "grant-permission",
        override_usage = "atollctl role grant-permission [options] <role name> <permission type> <key> [endkey]"
    )]
    GrantPermission {
        /// <role name> <permission type> <key> [endkey].
        #[arg(value_name = "ARGS")]
        args: Vec<String>,
        /// Which keys: a prefix, or from the key on.
        #[command(flatten)]
        range: PermissionRangeFlags,
    },
    /// Revokes a key from a role.
    #[command(
        name = "revoke-permission",
        override_usage = "atollctl role revoke-permission <role name> <key> [endkey]"
    )]
    RevokePermission {
        /// <role name> <key> [endkey].
        #[arg(value_name = "ARGS")]
        args: Vec<String>,
        /// Which keys: a prefix, or from the key on.
        #[command(flatten)]
        range: PermissionRangeFlags,
    },
}

/// etcdctl's `--prefix` and `--from-key` of a permission (`--prefix=true` or `--prefix`).
#[derive(Debug, Clone, Copy, Args)]
pub struct PermissionRangeFlags {
    /// A prefix permission.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub prefix: bool,
    /// A permission of keys that are greater than or equal to the given key.
    #[arg(long = "from-key", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub from_key: bool,
}

/// `auth <subcommand>`, as etcdctl's.
#[derive(Debug, Clone, Subcommand)]
pub enum AuthCommand {
    /// Enables authentication.
    Enable,
    /// Disables authentication.
    Disable,
    /// Returns authentication status.
    Status,
}

/// `shard <subcommand>`.
#[derive(Debug, Clone, Subcommand)]
pub enum ShardCommand {
    /// Lists the data shards of the shard map the meta shard holds: ID, key range, leader
    /// (member ID in hexadecimal), epoch and the map's version.
    List,
}

/// `member <subcommand>`, as etcdctl 3.4's; member IDs in hexadecimal.
#[derive(Debug, Clone, Subcommand)]
pub enum MemberCommand {
    /// Adds a member into the cluster.
    #[command(override_usage = "atollctl member add <memberName> [options]")]
    Add {
        /// <memberName>.
        #[arg(value_name = "NAME")]
        args: Vec<String>,
        /// Comma separated peer URLs for the new member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
        /// Indicates if the new member is raft learner.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster.
    #[command(override_usage = "atollctl member remove <memberID>")]
    Remove {
        /// <memberID> in hexadecimal.
        #[arg(value_name = "MEMBER_ID")]
        args: Vec<String>,
    },
    /// Updates a member in the cluster.
    #[command(override_usage = "atollctl member update <memberID> [options]")]
    Update {
        /// <memberID> in hexadecimal.
        #[arg(value_name = "MEMBER_ID")]
        args: Vec<String>,
        /// Comma separated peer URLs for the updated member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
    },
    /// Lists all members in the cluster.
    List,
    /// Promotes a non-voting member in the cluster.
    #[command(override_usage = "atollctl member promote <memberID>")]
    Promote {
        /// <memberID> in hexadecimal.
        #[arg(value_name = "MEMBER_ID")]
        args: Vec<String>,
    },
}

/// `lease <subcommand>`. Arguments are checked by the command, not clap, so a missing or
/// bad one gets etcdctl's own message and exit code.
#[derive(Debug, Clone, Subcommand)]
pub enum LeaseCommand {
    /// Creates leases.
    #[command(override_usage = "atollctl lease grant <ttl>")]
    Grant {
        /// <ttl> in seconds.
        #[arg(value_name = "TTL", allow_negative_numbers = true)]
        args: Vec<String>,
    },
    /// Revokes leases.
    #[command(override_usage = "atollctl lease revoke <leaseID>")]
    Revoke {
        /// <leaseID> in hexadecimal.
        #[arg(value_name = "LEASE_ID")]
        args: Vec<String>,
    },
    /// Get lease information.
    #[command(override_usage = "atollctl lease timetolive <leaseID> [options]")]
    Timetolive {
        /// <leaseID> in hexadecimal.
        #[arg(value_name = "LEASE_ID")]
        args: Vec<String>,
        /// Get keys attached to this lease.
        #[arg(long)]
        keys: bool,
    },
    /// List all active leases.
    List,
    /// Keeps leases alive (renew).
    #[command(override_usage = "atollctl lease keep-alive [options] <leaseID>")]
    KeepAlive {
        /// <leaseID> in hexadecimal.
        #[arg(value_name = "LEASE_ID")]
        args: Vec<String>,
        /// Resets the keep-alive time to its original value and exits immediately.
        #[arg(long)]
        once: bool,
    },
}

/// `watch [options] <key or prefix> [range_end]` (no interactive mode and no command to run
/// per event yet).
#[derive(Debug, Clone, Default, Args)]
pub struct WatchArgs {
    /// <key or prefix> [range_end].
    #[arg(value_name = "ARGS", value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// Watch on a prefix if prefix is set.
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get the previous key-value pair before the event happens.
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// Get periodic watch progress notification from server.
    #[arg(long = "progress-notify")]
    pub progress_notify: bool,
}

/// `put [options] <key> <value>`.
#[derive(Debug, Clone, Default, Args)]
pub struct PutArgs {
    /// <key> <value> (<value> can also be given from stdin).
    #[arg(value_name = "ARGS", value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// Lease ID (in hexadecimal) to attach to the key.
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// Return the previous key-value pair before modification.
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// Updates the key using its current value.
    #[arg(long = "ignore-value")]
    pub ignore_value: bool,
    /// Updates the key using its current lease.
    #[arg(long = "ignore-lease")]
    pub ignore_lease: bool,
}

/// `get [options] <key> [range_end]`.
#[derive(Debug, Clone, Default, Args)]
pub struct GetArgs {
    /// <key> [range_end].
    #[arg(value_name = "ARGS", value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// Linearizable(l) or Serializable(s).
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION.
    #[arg(long = "sort-by", default_value = "", hide_default_value = true)]
    pub sort_by: String,
    /// Maximum number of results.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit: i64,
    /// Get keys with matching prefix.
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare.
    #[arg(long = "from-key")]
    pub from_key: bool,
    /// Specify the kv revision.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get only the keys.
    #[arg(long = "keys-only")]
    pub keys_only: bool,
    /// Get only the count.
    #[arg(long = "count-only")]
    pub count_only: bool,
    /// Only write values when using the "simple" output format.
    #[arg(long = "print-value-only")]
    pub print_value_only: bool,
}

/// `del [options] <key> [range_end]`.
#[derive(Debug, Clone, Default, Args)]
pub struct DelArgs {
    /// <key> [range_end].
    #[arg(value_name = "ARGS", value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// Delete keys with matching prefix.
    #[arg(long)]
    pub prefix: bool,
    /// Return deleted key-value pairs.
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// Delete keys that are greater than or equal to the given key using byte compare.
    #[arg(long = "from-key")]
    pub from_key: bool,
}

/// `txn [options]`.
#[derive(Debug, Clone, Default, Args)]
pub struct TxnArgs {
    /// Input transaction in interactive mode.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Not accepted: etcdctl's txn takes no argument.
    #[arg(hide = true)]
    pub args: Vec<String>,
}

/// `compaction [options] <revision>`.
#[derive(Debug, Clone, Default, Args)]
pub struct CompactionArgs {
    /// <revision>.
    #[arg(value_name = "REVISION", allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// 'true' to wait for compaction to physically remove all old revisions.
    #[arg(long)]
    pub physical: bool,
}

/// `endpoint <subcommand>`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag.
    Health,
    /// Prints out the status of endpoints specified in `--endpoints` flag.
    ///
    /// When --write-out is set to simple, this command prints out comma-separated status
    /// lists for each endpoint. The items in the lists are endpoint, ID, version, db size,
    /// is leader, is learner, raft term, raft index, raft applied index, errors.
    Status,
}

/// One request line of a txn's success or failure block: etcdctl parses these with its own
/// put, get and del commands, so they take the same flags.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true, disable_help_subcommand = true)]
pub enum TxnOpLine {
    /// `put <key> <value>`.
    Put(PutArgs),
    /// `get <key> [range_end]`.
    Get(GetArgs),
    /// `del <key> [range_end]`.
    Del(DelArgs),
}

/// Turns clap's multi-line error into one line for `Error: <message>`: the first line
/// without clap's `error: ` prefix, plus any indented detail (such as the missing argument
/// names), without the usage block.
pub fn one_line_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let mut parts: Vec<&str> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || line.starts_with("tip:") {
            continue;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn must_parse(args: &[&str]) -> Cli {
        match Cli::try_parse_from(std::iter::once("atollctl").chain(args.iter().copied())) {
            Ok(cli) => cli,
            Err(e) => panic!("parse {args:?}: {e}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_etcdctl() {
        let cli = must_parse(&["get", "foo"]);
        assert_eq!(cli.global.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(cli.global.write_out, OutputFormat::Simple);
        assert_eq!(cli.global.dial_timeout, Duration::from_secs(2));
        assert_eq!(cli.global.command_timeout, Duration::from_secs(5));
        assert!(!cli.global.hex && !cli.global.insecure_skip_tls_verify);
        let Command::Get(get) = cli.command else { panic!("not get") };
        assert_eq!(get.args, [OsString::from("foo")]);
        assert_eq!(get.consistency, "l");
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let cli = must_parse(&["get", "k", "--endpoints=a:1,b:2", "-w", "json", "--hex"]);
        assert_eq!(cli.global.endpoints, ["a:1", "b:2"]);
        assert_eq!(cli.global.write_out, OutputFormat::Json);
        assert!(cli.global.hex);
        let cli = must_parse(&["--dial-timeout", "500ms", "--command-timeout=1m", "del", "k"]);
        assert_eq!(cli.global.dial_timeout, Duration::from_millis(500));
        assert_eq!(cli.global.command_timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_are_rejected_in_one_line() {
        let err = Cli::try_parse_from(["atollctl", "get", "k", "--nope"]).err();
        let line = err.as_ref().map(one_line_error).unwrap_or_default();
        assert_eq!(line, "unexpected argument '--nope' found");
        let err = Cli::try_parse_from(["atollctl", "--dial-timeout=5", "get", "k"]).err();
        let line = err.as_ref().map(one_line_error).unwrap_or_default();
        assert!(line.contains(r#"time: missing unit in duration "5""#), "{line}");
        let err = Cli::try_parse_from(["atollctl", "-w", "table", "get", "k"]).err();
        let line = err.as_ref().map(one_line_error).unwrap_or_default();
        assert!(line.starts_with("invalid value 'table' for '--write-out"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn get_flags_parse() {
        let cli = must_parse(&[
            "get",
            "a",
            "b",
            "--limit=3",
            "--rev",
            "7",
            "--sort-by=MODIFY",
            "--order",
            "DESCEND",
            "--keys-only",
            "--consistency=s",
            "--print-value-only",
        ]);
        let Command::Get(get) = cli.command else { panic!("not get") };
        assert_eq!(get.args.len(), 2);
        assert_eq!((get.limit, get.rev), (3, 7));
        assert_eq!((get.sort_by.as_str(), get.order.as_str()), ("MODIFY", "DESCEND"));
        assert!(get.keys_only && get.print_value_only && !get.count_only);
    }

    #[test]
    fn endpoint_and_txn_commands_parse() {
        assert!(matches!(
            must_parse(&["endpoint", "status"]).command,
            Command::Endpoint(EndpointCommand::Status)
        ));
        assert!(matches!(
            must_parse(&["endpoint", "health", "--endpoints=x:1"]).command,
            Command::Endpoint(EndpointCommand::Health)
        ));
        let Command::Txn(txn) = must_parse(&["txn", "-i"]).command else { panic!("not txn") };
        assert!(txn.interactive);
        let cli = must_parse(&["compaction", "--physical", "42"]);
        let Command::Compaction(c) = cli.command else { panic!("not compaction") };
        assert!(c.physical);
        assert_eq!(c.args, ["42"]);
    }

    #[test]
    fn put_value_after_double_dash_may_start_with_hyphen() {
        let Command::Put(put) = must_parse(&["put", "k", "--", "-v"]).command else {
            panic!("not put")
        };
        assert_eq!(put.args, [OsString::from("k"), OsString::from("-v")]);
    }
}
