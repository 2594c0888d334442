//! `tests/offline_build.sh` proves the build needs no network only if the network is
//! really cut: where it cannot make a network namespace, or the one it made still has
//! interfaces, it must fail before cloning or building anything — never fall back to a
//! build that could reach the network.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of stand-ins for `unshare`, `sudo`, `git` and `cargo`: `unshare` runs as
/// given by `body`; `sudo` is not allowed; `git` and `cargo` only leave a mark that they
/// ran.
fn stubs(tag: &str, unshare_body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("airlock-offline-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let marks = dir.join("ran");
    for (name, body) in [
        ("unshare", unshare_body.to_string()),
        ("sudo", "exit 1".to_string()),
        ("git", format!("echo git >> {}\nexit 1", marks.display())),
        (
            "cargo",
            format!("echo cargo >> {}\nexit 1", marks.display()),
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Runs the script with the stubs first on PATH: (succeeded, stderr, what else ran).
fn run_script(stubs: &Path) -> (bool, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/offline_build.sh");
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(script)
        .env("PATH", path)
        .output()
        .unwrap();
    let ran = std::fs::read_to_string(stubs.join("ran")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(stubs);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        ran,
    )
}

#[test]
fn no_network_namespace_means_no_build() {
    let (ok, stderr, ran) = run_script(&stubs("none", "exit 1"));
    assert!(!ok, "the script must fail: {stderr}");
    assert!(
        stderr.contains("cannot create a network namespace"),
        "{stderr}"
    );
    assert_eq!(ran, "", "nothing may be cloned or built");
}

#[test]
fn a_namespace_that_keeps_the_network_means_no_build() {
    // A stand-in that "succeeds" without cutting anything: the command runs in this
    // test's own network namespace. That proves the check only where this namespace has
    // an interface besides loopback, as every CI runner and developer machine has.
    let net = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    assert!(
        net.lines()
            .skip(2)
            .any(|l| !l.trim_start().starts_with("lo:")),
        "this test needs a network interface besides loopback to see it kept: {net}"
    );
    let passthrough = "while [ \"${1#-}\" != \"$1\" ]; do shift; done\nexec \"$@\"";
    let (ok, stderr, ran) = run_script(&stubs("kept", passthrough));
    assert!(!ok, "the script must fail: {stderr}");
    assert!(stderr.contains("still has interfaces"), "{stderr}");
    assert_eq!(ran, "", "nothing may be cloned or built");
}
