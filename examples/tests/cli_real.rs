//! `sre-agent run` against the real API server of `../shared/k8s-apiserver`, as the limited user:
//! the bad release is found, rolled back (auto approval), verified, and the command exits 0.
//! Skipped with a message when the harness is not up; required in `.ci/run`.

#[path = "../../sre-tools/tests/support/mod.rs"]
mod support;

use std::process::Command;

use serde_json::Value;

#[tokio::test]
async fn run_rolls_back_the_bad_release_on_the_real_api_server() {
    let Some(b) =
        support::Backend::real(sre_tools::sim::Scenario::builtin("bad-release").unwrap()).await
    else {
        return;
    };
    let ns = b.ns("shop");
    let kubeconfig = std::env::var("SRE_K8S_AGENT_KUBECONFIG").unwrap();
    let bin = env!("CARGO_BIN_EXE_sre-agent");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["run", "--namespace", &ns, "--approve", "auto", "--json"])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["provider"], "offline/playbook");
    assert_eq!(report["actions"][0]["tool"], "k8s_rollback");
    assert_eq!(report["actions"][0]["status"], "applied");
    assert_eq!(report["actions"][0]["verification"]["passed"], true);

    // Preflight as the same identity: nothing missing in its namespace, nothing dangerous.
    let ns = b.ns("shop");
    let kubeconfig = std::env::var("SRE_K8S_AGENT_KUBECONFIG").unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["preflight", "--namespace", &ns])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("missing: none") && text.contains("dangerous: none"),
        "{text}"
    );
    b.shutdown().await;
}
