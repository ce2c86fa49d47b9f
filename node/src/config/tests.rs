use super::*;
use clap::CommandFactory;

fn flags(args: &[&str]) -> Flags {
    let mut all = vec!["atoll"];
    all.extend_from_slice(args);
    Flags::try_parse_from(all).expect("flags parse")
}

#[test]
fn defaults_are_etcds_and_valid() {
    let cfg = NodeConfig::load(&Flags::default()).expect("defaults load");
    assert_eq!(cfg.max_request_bytes, 1_572_864);
    assert_eq!(cfg.max_txn_ops, 128);
    assert_eq!(cfg.election_ticks(), 10);
    assert_eq!(cfg.advertise_client_urls, cfg.listen_client_urls);
    assert_eq!(cfg.data_dir, PathBuf::from("./atoll-data"));
}

#[test]
fn example_config_file_parses_to_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/atoll.example.toml");
    let cfg = NodeConfig::load(&flags(&["--config-file", path])).expect("example loads");
    assert_eq!(
        cfg,
        NodeConfig {
            advertise_client_urls: cfg.listen_client_urls.clone(),
            ..NodeConfig::default()
        }
    );
}

#[test]
fn flags_override_the_file_and_units_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atoll.toml");
    std::fs::write(&path, "name = \"from-file\"\nmax-txn-ops = 7\nheartbeat-interval = \"50ms\"\n")
        .expect("write");
    let cfg = NodeConfig::load(&flags(&[
        "--config-file",
        path.to_str().expect("utf8"),
        "--name",
        "from-flag",
        "--max-request-bytes",
        "2MiB",
    ]))
    .expect("loads");
    assert_eq!(cfg.name, "from-flag");
    assert_eq!(cfg.max_txn_ops, 7);
    assert_eq!(cfg.heartbeat_interval, Duration::from_millis(50));
    assert_eq!(cfg.max_request_bytes, 2 << 20);
}

#[test]
fn bad_settings_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atoll.toml");
    std::fs::write(&path, "nmae = \"typo\"\n").expect("write");
    let e = NodeConfig::load(&flags(&["--config-file", path.to_str().expect("utf8")]))
        .expect_err("unknown key is refused");
    assert!(e.to_string().contains("unknown field"), "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");

    let e = NodeConfig::load(&flags(&["--election-timeout", "200", "--heartbeat-interval", "100"]))
        .expect_err("election too short");
    assert!(e.to_string().contains("at least 5 times"), "{e}");
    let e = NodeConfig::load(&flags(&["--cert-file", "a.pem"])).expect_err("partial tls");
    assert!(e.to_string().contains("go together"), "{e}");
    let e = NodeConfig::load(&flags(&["--listen-client-urls", "127.0.0.1:2379"]))
        .expect_err("scheme needed");
    assert!(e.to_string().contains("https://"), "{e}");
    assert!(Flags::try_parse_from(["atoll", "--no-such-flag"]).is_err());
}

fn must_err(args: &[&str]) -> String {
    let e = NodeConfig::load(&flags(args)).expect_err("must be refused").to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

const THREE: &str = "n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380,n3=https://10.0.0.3:2380";

fn node_of_three(name: &str, url: &str) -> NodeConfig {
    NodeConfig::load(&flags(&[
        "--name",
        name,
        "--initial-cluster",
        THREE,
        "--initial-advertise-peer-urls",
        url,
        "--initial-cluster-token",
        "tok",
    ]))
    .expect("three-node flags load")
}

#[test]
fn without_initial_cluster_a_node_is_a_cluster_of_itself() {
    let cfg = NodeConfig::load(&flags(&[
        "--name",
        "solo",
        "--listen-peer-urls",
        "https://127.0.0.1:12380",
    ]))
    .expect("loads");
    assert_eq!(cfg.cluster.initial_cluster_state, ClusterState::New);
    assert_eq!(
        cfg.cluster.initial_advertise_peer_urls,
        vec!["https://127.0.0.1:12380".to_string()]
    );
    assert_eq!(
        cfg.cluster.initial_cluster,
        vec![InitialMember {
            name: "solo".into(),
            peer_urls: vec!["https://127.0.0.1:12380".into()]
        }]
    );
    assert!(cfg.cluster.initial_split.is_empty());
    let members = cfg.initial_members();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_urls, cfg.advertise_client_urls);
    let identity = cfg.initial_identity();
    assert_eq!(identity.member_id, members[0].id.0);
    assert_eq!(identity.cluster_id, crate::identity::cluster_id(&[identity.member_id]));
}

#[test]
fn every_node_of_a_cluster_derives_the_same_ids() {
    let nodes = [
        node_of_three("n1", "https://10.0.0.1:2380"),
        node_of_three("n2", "https://10.0.0.2:2380"),
        node_of_three("n3", "https://10.0.0.3:2380"),
    ];
    let ids: Vec<NodeId> = nodes[0].initial_members().iter().map(|m| m.id).collect();
    for (i, node) in nodes.iter().enumerate() {
        let theirs: Vec<NodeId> = node.initial_members().iter().map(|m| m.id).collect();
        assert_eq!(theirs, ids, "node {i} derives other member IDs");
        assert_eq!(node.initial_identity().member_id, ids[i].0);
        assert_eq!(node.initial_identity().cluster_id, nodes[0].initial_identity().cluster_id);
    }
    let distinct: std::collections::BTreeSet<NodeId> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 3);
    let other_token = NodeConfig::load(&flags(&[
        "--name",
        "n1",
        "--initial-cluster",
        THREE,
        "--initial-advertise-peer-urls",
        "https://10.0.0.1:2380",
    ]))
    .expect("loads");
    assert_ne!(
        other_token.initial_identity(),
        nodes[0].initial_identity(),
        "the token salts the IDs"
    );
}

#[test]
fn a_name_given_twice_gets_both_urls_as_in_etcd() {
    let cfg = NodeConfig::load(&flags(&[
        "--name",
        "n1",
        "--initial-cluster",
        "n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380,n1=https://10.0.1.1:2380",
        "--initial-advertise-peer-urls",
        "https://10.0.1.1:2380,https://10.0.0.1:2380",
    ]))
    .expect("loads");
    assert_eq!(cfg.cluster.initial_cluster.len(), 2);
    assert_eq!(cfg.cluster.initial_cluster[0].peer_urls.len(), 2);
}

#[test]
fn cluster_flags_also_come_from_the_environment_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atoll.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"n2\"\ninitial-cluster = \"{THREE}\"\ninitial-advertise-peer-urls = [\"https://10.0.0.2:2380\"]\n\
             initial-cluster-state = \"existing\"\ninitial-split = [\"/registry/events/\", \"/registry/pods/\"]\n"
        ),
    )
    .expect("write");
    let cfg =
        NodeConfig::load(&flags(&["--config-file", path.to_str().expect("utf8")])).expect("loads");
    assert_eq!(cfg.cluster.initial_cluster_state, ClusterState::Existing);
    assert_eq!(
        cfg.cluster.initial_split,
        vec![b"/registry/events/".to_vec(), b"/registry/pods/".to_vec()]
    );
    assert_eq!(cfg.cluster.initial_cluster.len(), 3);
    let from_flag =
        flags(&["--config-file", path.to_str().expect("utf8"), "--initial-split", "/a/,/b/"]);
    let cfg = NodeConfig::load(&from_flag).expect("loads");
    assert_eq!(
        cfg.cluster.initial_split,
        vec![b"/a/".to_vec(), b"/b/".to_vec()],
        "flag wins over file"
    );
    let env = Flags::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    for var in [
        "ATOLL_INITIAL_CLUSTER",
        "ATOLL_INITIAL_ADVERTISE_PEER_URLS",
        "ATOLL_INITIAL_CLUSTER_STATE",
        "ATOLL_INITIAL_CLUSTER_TOKEN",
        "ATOLL_INITIAL_SPLIT",
    ] {
        assert!(env.iter().any(|e| e == var), "{var} is not read");
    }
}

#[test]
fn bad_cluster_flags_are_one_line_errors() {
    let with = |extra: &[&str]| {
        let mut args =
            vec!["--name", "n1", "--initial-advertise-peer-urls", "https://10.0.0.1:2380"];
        args.extend_from_slice(extra);
        must_err(&args)
    };
    let e = with(&["--initial-cluster", "n2=https://10.0.0.2:2380,n3=https://10.0.0.3:2380"]);
    assert!(e.contains("no member named 'n1'"), "{e}");
    let e = with(&["--initial-cluster", "n1=https://10.0.0.9:2380"]);
    assert!(e.contains("must be the same"), "{e}");
    let e = with(&["--initial-cluster", "n1=https://10.0.0.1:2380,n2=https://10.0.0.1:2380"]);
    assert!(e.contains("twice"), "{e}");
    let e = with(&["--initial-cluster", "n1=https://10.0.0.1:2380,https://10.0.0.2:2380"]);
    assert!(e.contains("must be name=URL"), "{e}");
    let e = with(&["--initial-cluster", "n1=https://10.0.0.1:2380,n2=10.0.0.2:2380"]);
    assert!(e.contains("https://host:port"), "{e}");
    let e = with(&["--initial-cluster", "n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380/peer"]);
    assert!(e.contains("https://host:port"), "a path is refused: {e}");
    let e = with(&["--initial-cluster-state", "joining"]);
    assert!(e.contains("use new or existing"), "{e}");
    let e = with(&["--initial-split", "/a/,,/b/"]);
    assert!(e.contains("--initial-split: prefix 2 is empty"), "{e}");
    let e = with(&["--initial-split", "/a/,/a/"]);
    assert!(e.contains("given twice"), "{e}");
    let e = must_err(&["--initial-advertise-peer-urls", "https://127.0.0.1:0"]);
    assert!(e.contains("https://host:port"), "port 0: {e}");
}

#[test]
fn compaction_flags_and_file_keys_map_onto_the_compactor() {
    use atoll_shard::core::Retention;
    let cfg = NodeConfig::load(&flags(&[
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "1000",
        "--compaction-batch-limit",
        "50",
        "--auto-compaction-max-deferral",
        "30s",
    ]))
    .expect("loads");
    let compactor = cfg.compaction.compactor_config();
    assert_eq!(compactor.auto.retention, Some(Retention::Revisions(1000)));
    assert_eq!(compactor.batch_versions_max, 50);
    assert_eq!(compactor.auto.max_deferral, Duration::from_secs(30));
    assert_eq!(compactor.sleep_interval, Duration::from_millis(10), "etcd's default");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atoll.toml");
    std::fs::write(
        &path,
        "auto-compaction-retention = \"10h\"\ncompaction-sleep-interval = \"1ms\"\n",
    )
    .expect("write");
    let cfg =
        NodeConfig::load(&flags(&["--config-file", path.to_str().expect("utf8")])).expect("loads");
    let compactor = cfg.compaction.compactor_config();
    assert_eq!(compactor.auto.retention, Some(Retention::Periodic(Duration::from_secs(36_000))));
    assert_eq!(compactor.sleep_interval, Duration::from_millis(1));

    let bad = NodeConfig::load(&flags(&[
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "1h",
    ]))
    .expect_err("a duration in revision mode is refused");
    assert!(!bad.to_string().contains('\n'), "{bad}");
    assert!(bad.to_string().contains("revision mode takes a number of revisions"), "{bad}");
    let zero = NodeConfig::load(&flags(&["--compaction-batch-limit", "0"])).expect_err("zero");
    assert_eq!(zero.to_string(), "--compaction-batch-limit must be at least 1");
}

#[test]
fn every_member_computes_the_same_initial_shard_map_whatever_its_flag_order() {
    let listed = |cluster: &str, name: &str, url: &str| {
        NodeConfig::load(&flags(&[
            "--name",
            name,
            "--initial-cluster",
            cluster,
            "--initial-advertise-peer-urls",
            url,
            "--initial-cluster-token",
            "tok",
            "--initial-split",
            "/registry/pods/,/registry/events/",
        ]))
        .expect("flags load")
    };
    let one = listed(THREE, "n1", "https://10.0.0.1:2380");
    let reversed: Vec<&str> = THREE.split(',').rev().collect();
    let other = listed(&reversed.join(","), "n3", "https://10.0.0.3:2380");
    let map = crate::cluster::initial_shard_map(&one).expect("map");
    assert_eq!(crate::cluster::initial_shard_map(&other).expect("map"), map);
    assert_eq!(map.shards.len(), 5);
    let nodes: Vec<NodeId> = map.shards[0].replicas.iter().map(|r| r.node).collect();
    assert!(nodes.windows(2).all(|w| w[0] < w[1]), "replicas in ID order: {nodes:?}");
}

#[test]
fn the_strict_reconfig_check_is_on_unless_turned_off_as_in_etcd() {
    assert!(NodeConfig::load(&flags(&[])).expect("default").strict_reconfig_check);
    let on = NodeConfig::load(&flags(&["--strict-reconfig-check"])).expect("bare flag");
    assert!(on.strict_reconfig_check);
    let off = NodeConfig::load(&flags(&["--strict-reconfig-check=false"])).expect("false");
    assert!(!off.strict_reconfig_check);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atoll.toml");
    std::fs::write(&path, "strict-reconfig-check = false\n").expect("write");
    let file = NodeConfig::load(&flags(&["--config-file", path.to_str().expect("utf8")]));
    assert!(!file.expect("file").strict_reconfig_check);
    let bad = Flags::try_parse_from(["atoll", "--strict-reconfig-check=maybe"]);
    assert!(bad.is_err(), "a value that is not a bool is refused");
}
