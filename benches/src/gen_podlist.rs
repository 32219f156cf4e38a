//! Writes the benchmark's generated `PodList` to a file, for the Python comparison script.
//!
//! ```sh
//! cargo run --release -p sre-benches --bin gen-podlist -- 10000 /tmp/pods.json
//! ```

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let path = args.next().unwrap_or_else(|| "pods.json".into());
    std::fs::write(&path, sre_benches::pod_list_json(n))?;
    eprintln!("wrote {n} pods to {path}");
    Ok(())
}
