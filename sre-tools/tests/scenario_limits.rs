//! Scenario sizes are checked when a scenario is loaded, before the simulator allocates anything:
//! `replicas: 1000000` or tens of thousands of deployments once made the simulator use 6–8 GB and
//! abort. Each hostile scenario here is refused quickly with an error naming the field, its value
//! and the limit; the built-in `large-cluster` (10,000 pods) and a scenario at the limits still load.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sre_tools::sim::Simulator;
use sre_tools::sim::scenario::{Bulk, Scenario, limits};

/// Long enough for a slow CI machine, far too short to build 10⁶ pods.
const QUICK: Duration = Duration::from_secs(10);

fn write(name: &str, yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sre-scenario-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Loads `yaml` as `my.yaml`, expecting a quick error equal to `expected`.
fn refused(yaml: &str, expected: &str) {
    let start = Instant::now();
    let e = Scenario::from_yaml(yaml, "my.yaml").map(|s| s.name);
    let e = match e {
        Ok(name) => panic!("scenario {name} was accepted; expected: {expected}"),
        Err(e) => e.to_string(),
    };
    assert_eq!(e, expected);
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
}

fn deployment(ns: &str, name: &str, replicas: i64, image: &str) -> String {
    format!(
        "  - {{namespace: {ns}, name: {name}, replicas: {replicas}, containers: [{{name: app, image: {image}}}]}}\n"
    )
}

#[test]
fn a_million_replicas_are_refused_at_load_not_after_gigabytes() {
    let yaml = format!(
        "name: big\ndeployments:\n{}",
        deployment("shop", "web", 1_000_000, "nginx:1.25")
    );
    refused(
        &yaml,
        "scenario my.yaml: deployment shop/web has replicas 1000000; the simulator allows at most 1000 per deployment",
    );
    // The same through the paths the CLI and Python use: a file, and starting a simulator on it.
    let path = write("million.yaml", &yaml);
    let e = Scenario::load(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has replicas 1000000; the simulator allows at most 1000"),
        "{e}"
    );
    let start = Instant::now();
    let e = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(Simulator::start_named(path.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "scenario {}: deployment shop/web has replicas 1000000",
            path.display()
        )),
        "{e}"
    );
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    // i32::MAX, the largest value the field can hold.
    refused(
        &format!(
            "name: big\ndeployments:\n{}",
            deployment("shop", "web", i64::from(i32::MAX), "x")
        ),
        "scenario my.yaml: deployment shop/web has replicas 2147483647; the simulator allows at most 1000 per deployment",
    );
}

#[test]
fn tens_of_thousands_of_deployments_are_refused() {
    // Generated: 100 namespaces × 1,000 deployments, each within its own limit.
    refused(
        "name: big\nbulk: {namespaces: 100, deployments: 1000, replicas: 0, unhealthyEvery: 0, image: a, unhealthyImage: b}",
        "scenario my.yaml: the scenario has 100000 deployments (bulk.namespaces × bulk.deployments included); the simulator allows at most 2000",
    );
    // Listed one by one, with no replicas at all.
    let mut yaml = String::from("name: big\ndeployments:\n");
    for i in 0..=limits::MAX_DEPLOYMENTS {
        yaml.push_str(&deployment("shop", &format!("d{i}"), 0, "nginx:1.25"));
    }
    refused(
        &yaml,
        "scenario my.yaml: the scenario has 2001 deployments (bulk.namespaces × bulk.deployments included); the simulator allows at most 2000",
    );
}

#[test]
fn bulk_numbers_are_checked_one_by_one_and_cannot_overflow() {
    let bulk = |ns: &str, deps: &str, replicas: &str| {
        format!(
            "name: big\nbulk: {{namespaces: {ns}, deployments: {deps}, replicas: {replicas}, unhealthyEvery: 0, image: a, unhealthyImage: b}}"
        )
    };
    refused(
        &bulk("18446744073709551615", "18446744073709551615", "2147483647"),
        "scenario my.yaml: bulk.namespaces is 18446744073709551615; the simulator allows at most 1000 namespaces",
    );
    refused(
        &bulk("10", "1000000", "1"),
        "scenario my.yaml: bulk.deployments is 1000000; the simulator allows at most 2000 deployments",
    );
    refused(
        &bulk("10", "100", "1000000"),
        "scenario my.yaml: bulk.replicas is 1000000; the simulator allows at most 1000 per deployment",
    );
    refused(
        &bulk("10", "100", "-1"),
        "scenario my.yaml: bulk.replicas is -1; it must be 0 or more",
    );
}

#[test]
fn more_pods_in_all_than_the_limit_are_refused() {
    // 21 deployments of 1,000 replicas: each allowed, together too many.
    let mut yaml = String::from("name: big\ndeployments:\n");
    for i in 0..21 {
        yaml.push_str(&deployment("shop", &format!("d{i}"), 1000, "nginx:1.25"));
    }
    refused(
        &yaml,
        "scenario my.yaml: the deployments ask for 21000 pods in all (replicas summed over every deployment, bulk included); the simulator allows at most 20000",
    );
    // Bulk and listed deployments add up.
    let yaml = format!(
        "name: big\nbulk: {{namespaces: 10, deployments: 100, replicas: 20, unhealthyEvery: 0, image: a, unhealthyImage: b}}\ndeployments:\n{}",
        deployment("shop", "web", 1, "nginx:1.25")
    );
    refused(
        &yaml,
        "scenario my.yaml: the deployments ask for 20001 pods in all (replicas summed over every deployment, bulk included); the simulator allows at most 20000",
    );
}

#[test]
fn containers_history_and_namespaces_are_bounded() {
    let mut containers = String::new();
    for i in 0..=limits::MAX_CONTAINERS_PER_POD {
        let _ = write!(containers, "{{name: c{i}, image: x}}, ");
    }
    refused(
        &format!(
            "name: big\ndeployments:\n  - {{namespace: shop, name: web, containers: [{containers}]}}"
        ),
        "scenario my.yaml: deployment shop/web has 21 containers; the simulator allows at most 20 per pod",
    );
    // 20,000 pods of 3 containers: 60,000 containers.
    let mut yaml = String::from("name: big\ndeployments:\n");
    for i in 0..20 {
        let _ = writeln!(
            yaml,
            "  - {{namespace: shop, name: d{i}, replicas: 1000, containers: [{{name: a, image: x}}, {{name: b, image: x}}, {{name: c, image: x}}]}}"
        );
    }
    refused(
        &yaml,
        "scenario my.yaml: the pods have 60000 containers in all (replicas × containers); the simulator allows at most 40000",
    );
    let history = "{app: x}, ".repeat(limits::MAX_HISTORY + 1);
    refused(
        &format!(
            "name: big\ndeployments:\n  - {{namespace: shop, name: web, history: [{history}], containers: [{{name: app, image: y}}]}}"
        ),
        "scenario my.yaml: deployment shop/web has 11 history revisions; the simulator allows at most 10 (the deployment's revisionHistoryLimit)",
    );
    let namespaces: Vec<String> = (0..=limits::MAX_NAMESPACES)
        .map(|i| format!("ns-{i}"))
        .collect();
    refused(
        &format!("name: big\nnamespaces: [{}]", namespaces.join(", ")),
        "scenario my.yaml: the scenario has 1001 namespaces; the simulator allows at most 1000",
    );
}

#[test]
fn image_catalogue_logs_vulnerabilities_and_restarts_are_bounded() {
    refused(
        "name: big\nimages:\n  scanner-bait:1.0: {vulnerabilities: {CRITICAL: 4000000000, HIGH: 4000000000}}",
        "scenario my.yaml: image scanner-bait:1.0 has 8000000000 vulnerabilities; the simulator allows at most 10000 per image",
    );
    refused(
        "name: big\nimages:\n  app:1.0: {health: crashloop, restarts: 2147483647}",
        "scenario my.yaml: image app:1.0 has restarts 2147483647; the simulator allows 0 to 100000",
    );
    refused(
        "name: big\nimages:\n  app:1.0: {health: crashloop, restarts: -5}",
        "scenario my.yaml: image app:1.0 has restarts -5; the simulator allows 0 to 100000",
    );
    let log = "x".repeat(limits::MAX_LOG_BYTES + 1);
    refused(
        &format!("name: big\nimages:\n  app:1.0: {{logs: {log}}}"),
        "scenario my.yaml: image app:1.0 has logs of 65537 bytes; the simulator allows at most 65536 bytes per image",
    );
    let mut yaml = String::from("name: big\nimages:\n");
    for i in 0..=limits::MAX_IMAGES {
        let _ = writeln!(yaml, "  app:{i}: {{}}");
    }
    refused(
        &yaml,
        "scenario my.yaml: the image catalogue has 1001 images; the simulator allows at most 1000",
    );
    // Every pod keeps its container's log, current and previous: 2 × 1,100 × 64 KiB > 128 MiB.
    let log = "x".repeat(limits::MAX_LOG_BYTES);
    let mut yaml = format!(
        "name: big\nimages:\n  app:1.0: {{health: crashloop, logs: {log}}}\ndeployments:\n"
    );
    for i in 0..11 {
        yaml.push_str(&deployment("shop", &format!("d{i}"), 100, "app:1.0"));
    }
    refused(
        &yaml,
        "scenario my.yaml: the pods' logs would take 144179200 bytes (each container keeps its image's log, current and previous); the simulator allows at most 134217728: shorten the logs or lower the replicas",
    );
}

#[test]
fn a_huge_file_is_refused_without_reading_it_all() {
    let path = write("huge.yaml", "");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1 << 30).unwrap(); // sparse: a gigabyte of NUL bytes
    let start = Instant::now();
    let e = Scenario::load(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "scenario {}: the file has 8388609 bytes or more; the simulator reads scenario files of at most 8388608 bytes (8 MiB)",
            path.display()
        )
    );
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    std::fs::remove_file(&path).unwrap();
    let e = Scenario::from_yaml(&" ".repeat(limits::MAX_FILE_BYTES + 1), "big.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("scenario big.yaml: the file has 8388609 bytes or more"),
        "{e}"
    );
}

#[test]
fn a_yaml_alias_bomb_is_refused_before_it_expands() {
    // serde_yaml limits alias *jumps*, not what they expand to: 20,000 aliases of a 20,000-element
    // sequence are a 200 KB file and 4×10⁸ values (tens of GB) once parsed.
    let wide = vec!["x"; 20_000].join(", ");
    let aliases = vec!["*wide"; 20_000].join(", ");
    let yaml = format!(
        "name: bomb\nobjects:\n  - {{kind: ConfigMap, metadata: {{name: a}}, data: &wide [{wide}]}}\n  - {{kind: ConfigMap, metadata: {{name: b}}, data: [{aliases}]}}\n"
    );
    assert!(yaml.len() < 250_000);
    refused(
        &yaml,
        "scenario my.yaml: the YAML expands (anchors and aliases included) to more than 1000000 nodes or 33554432 bytes of values; the simulator allows at most that: use fewer objects and aliases, or `bulk` for many deployments",
    );
    // A long log aliased many times: few nodes, many bytes.
    let log = "x".repeat(60_000);
    let mut yaml = format!("name: bomb\nimages:\n  app:0: {{logs: &log {log}}}\n");
    for i in 1..1_000 {
        let _ = writeln!(yaml, "  app:{i}: {{logs: *log}}");
    }
    refused(
        &yaml,
        "scenario my.yaml: the YAML expands (anchors and aliases included) to more than 1000000 nodes or 33554432 bytes of values; the simulator allows at most that: use fewer objects and aliases, or `bulk` for many deployments",
    );
    // Anchors and aliases as people use them still work.
    let s = Scenario::from_yaml(
        "name: ok\nimages:\n  app:1: &healthy {health: healthy, logs: \"ready\\n\"}\n  app:2: *healthy\n",
        "ok.yaml",
    )
    .unwrap();
    assert_eq!(s.images["app:2"].logs, "ready\n");
}

#[test]
fn a_scenario_built_in_code_is_checked_by_validate() {
    let mut s = Scenario::builtin("healthy").unwrap();
    s.bulk = Some(Bulk {
        namespaces: 1000,
        deployments: 1000,
        replicas: 1000,
        unhealthy_every: 0,
        image: "a".into(),
        unhealthy_image: "b".into(),
    });
    let e = s.validate("code").unwrap_err().to_string();
    assert_eq!(
        e,
        "scenario code: the scenario has 1000002 deployments (bulk.namespaces × bulk.deployments included); the simulator allows at most 2000"
    );
}

#[test]
fn large_cluster_and_a_scenario_at_every_limit_still_load() {
    for (name, _) in sre_tools::sim::scenario::BUILTIN {
        Scenario::builtin(name).unwrap();
    }
    let s = Scenario::builtin("large-cluster").unwrap();
    let b = s.bulk.as_ref().unwrap();
    assert_eq!(
        b.namespaces * b.deployments * usize::try_from(b.replicas).unwrap(),
        10_000
    );
    // 20 deployments of 1,000 replicas (20,000 pods), 10 history revisions, a 64 KiB log in the
    // catalogue and 2 KiB in each of the 20,000 pods (current and previous: 80 MB in all).
    let big = "x".repeat(limits::MAX_LOG_BYTES);
    let log = "x".repeat(2048);
    let mut yaml = format!(
        "name: at-limits\nimages:\n  big:1.0: {{logs: {big}}}\n  app:1.0: {{logs: {log}}}\n  app:0.9: {{vulnerabilities: {{CRITICAL: 10000}}, restarts: 100000}}\ndeployments:\n"
    );
    let history = "{app: 'app:0.9'}, ".repeat(limits::MAX_HISTORY);
    for i in 0..20 {
        let _ = writeln!(
            yaml,
            "  - {{namespace: shop, name: d{i}, replicas: 1000, history: [{history}], containers: [{{name: app, image: app:1.0}}]}}"
        );
    }
    let s = Scenario::from_yaml(&yaml, "at-limits.yaml").unwrap();
    assert_eq!(
        s.deployments.iter().map(|d| d.replicas).sum::<i32>(),
        20_000
    );
}
