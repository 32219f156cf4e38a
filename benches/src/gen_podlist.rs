//! Writes a generated `PodList` to a file, for `triage-file` and the comparison scripts: the
//! realistic shape by default (`managedFields`, annotations, owner references, multi-container
//! pods, mixed states: about 65 MB for 10,000 pods), or with `--lean` the older list of real
//! pod objects without `managedFields` (about 31 MB).
//!
//! ```sh
//! cargo run --release -p sre-benches --bin gen-podlist -- 10000 /tmp/pods.json
//! cargo run --release -p sre-benches --bin gen-podlist -- 10000 /tmp/pods-lean.json --lean
//! ```

#![expect(clippy::cast_precision_loss, reason = "a size printed in MB")]

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lean = args.iter().any(|a| a == "--lean");
    let mut rest = args.iter().filter(|a| *a != "--lean");
    let n: usize = rest.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let path = rest.next().map_or("pods.json", String::as_str);
    let json = if lean {
        sre_benches::pod_list_json(n)
    } else {
        sre_benches::realistic_pod_list_json(n)
    };
    std::fs::write(path, &json)?;
    eprintln!(
        "wrote {n} pods ({:.1} MB, {} shape) to {path}",
        json.len() as f64 / 1e6,
        if lean { "lean" } else { "realistic" }
    );
    Ok(())
}
