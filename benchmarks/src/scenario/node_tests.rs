//! Tests of the node guards with a stand-in `atoll`: a shell script that prints the ready line
//! (or fails) and then sleeps. They check clean-up and error messages, never timings.

use super::*;

/// A temporary directory holding stand-in scripts, removed on drop.
struct Scripts(NodeDir);

impl Scripts {
    fn must_new() -> Scripts {
        Scripts(NodeDir::create("test-scripts").expect("temp dir"))
    }

    fn must_write(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.0.root().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// One test writes both scripts before starting any process: a script written while another
/// thread forks can fail to execute with ETXTBSY, so no two tests here write and spawn at once.
#[tokio::test]
async fn stand_in_nodes_restart_report_failures_and_are_cleaned_up() {
    let scripts = Scripts::must_new();
    let ready = scripts.must_write(
        "atoll",
        "echo starting\necho \"atoll: ready to serve clients on $4\"\nexec sleep 60",
    );
    let failing =
        scripts.must_write("atoll-fail", "echo 'atoll: data directory is locked' >&2\nexit 2");
    restart_kill_and_drop(&ready).await;
    early_exit_reports_the_log(&failing).await;
}

async fn restart_kill_and_drop(bin: &Path) {
    let mut node = Node::start(bin, "test-restart").await.expect("starts");
    let root = node.dir().root().to_path_buf();
    assert!(root.is_dir());
    node.stop(StopHow::Term).await.expect("stops on SIGTERM");
    node.spawn().expect("spawns again");
    node.wait_ready().await.expect("ready again");
    node.stop(StopHow::Kill).await.expect("stops on kill -9");
    node.spawn().expect("spawns again");
    node.wait_ready().await.expect("ready again");
    let pid = node.process.as_ref().map(NodeProcess::pid).expect("running");
    assert!(pid_alive(pid));
    drop(node);
    assert!(!pid_alive(pid), "the process is killed on drop");
    assert!(!root.exists(), "the directory is removed on drop");
}

async fn early_exit_reports_the_log(bin: &Path) {
    let err = Node::start(bin, "test-fail").await.expect_err("exits");
    let text = err.to_string();
    assert!(text.contains("exited") && text.contains("data directory is locked"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_error() {
    let err = Node::start(Path::new("/nonexistent/atoll"), "test-missing").await.expect_err("none");
    assert!(err.to_string().contains("--atoll-bin"), "{err}");
}
