//! The simulator's random streams: each use (thinning, placement within a bin, service
//! times, priorities, boot times, Spot interruptions, the worker's dispatch choices) draws from its own stream of the
//! scenario seed ([`scale0_core::rng`], the project's one PRNG), so changing how one of
//! them consumes numbers never shifts another.

pub use scale0_core::rng::{Rng, splitmix64};

/// Independent streams derived from one scenario seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    Thinning = 1,
    Placement = 2,
    Service = 3,
    Priority = 4,
    Boot = 5,
    Copies = 6,
    TickPhase = 7,
    Interruption = 8,
    /// The worker's power-of-two choices.
    Dispatch = 9,
}

/// The stream `stream` of the scenario seed `seed`.
pub fn stream(seed: u64, stream: Stream) -> Rng {
    Rng::derived(seed, stream as u64)
}
