use super::*;

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
