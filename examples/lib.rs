//! Example programs of sre-agent; see `examples/README.md` for the list and how to run each.
//! The `sre-agent` CLI binary will live here too.
