//! The activation path end to end: a first request at zero reaches the provider's
//! start call through the worker's activation event, not the (minute-long) tick.
//! The latency itself is measured by `cargo bench -p scale0-tests --bench activation`
//! and recorded in BENCHMARKS.md.

use scale0_tests::{activation_trials, percentile};

#[test]
fn first_request_at_zero_reaches_the_provider_through_activation() {
    let ms = activation_trials(10, "activation-test");
    assert_eq!(ms.len(), 10);
    // Each launch came from the activation event: the tick would take a minute.
    let worst = percentile(&ms, 1.0);
    assert!(worst < 5_000.0, "a launch took {worst} ms: {ms:?}");
    assert!(ms.iter().all(|&m| m > 0.0), "launch before publish? {ms:?}");
}
