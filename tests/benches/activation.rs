//! First request at zero → the local provider's start call, over 50 trials on 50
//! deployments at zero (`cargo bench -p scale0-tests --bench activation`). Needs
//! RabbitMQ and Redis running and the release binaries built
//! (`cargo build --release --workspace --bins`).
//! Goal (issue 6): p99 ≤ 100 ms.

use scale0_tests::{activation_trials, percentile};

fn main() {
    let ms = activation_trials(50, "activation-bench");
    println!(
        "first request at zero → provider start call, {} trials",
        ms.len()
    );
    for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        println!("  {name:<4} {:>7.1} ms", percentile(&ms, p));
    }
}
