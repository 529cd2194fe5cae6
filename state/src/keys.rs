//! The key schema. One function per key so no other module spells a key by hand.
//!
//! `scale0:{<deployment>}:<name>`; the braces make `<deployment>` the Redis Cluster
//! hash tag. Deployment names are validated to `[a-z0-9_-]` by the config, so they
//! never contain braces or colons.

/// Set of deployment names the control plane has seen.
pub const DEPLOYMENTS: &str = "scale0:deployments";

fn key(deployment: &str, name: &str) -> String {
    format!("scale0:{{{deployment}}}:{name}")
}

pub fn instances(d: &str) -> String {
    key(d, "instances")
}
pub fn inflight(d: &str, instance: &str) -> String {
    key(d, &format!("inflight:{instance}"))
}
pub fn generation(d: &str) -> String {
    key(d, "generation")
}
pub fn memory(d: &str) -> String {
    key(d, "memory")
}
pub fn desired(d: &str) -> String {
    key(d, "desired")
}
pub fn decisions(d: &str) -> String {
    key(d, "decisions")
}
pub fn event(d: &str, id: &str) -> String {
    key(d, &format!("event:{id}"))
}
pub fn done(d: &str, message_id: &str) -> String {
    key(d, &format!("done:{message_id}"))
}
pub fn claim(d: &str, message_id: &str) -> String {
    key(d, &format!("claim:{message_id}"))
}
pub fn arrivals(d: &str) -> String {
    key(d, "arrivals")
}
pub fn tokens(d: &str) -> String {
    key(d, "tokens")
}
pub fn last_arrival(d: &str) -> String {
    key(d, "last-arrival")
}
pub fn held(d: &str) -> String {
    key(d, "held")
}
pub fn service_ms(d: &str) -> String {
    key(d, "service-ms")
}
pub fn latency_ms(d: &str) -> String {
    key(d, "latency-ms")
}
pub fn boots(d: &str, pool: &str) -> String {
    key(d, &format!("boots:{pool}"))
}
pub fn cap(d: &str) -> String {
    key(d, "cap")
}
pub fn unavailable(d: &str) -> String {
    key(d, "unavailable")
}
pub fn activation(d: &str) -> String {
    key(d, "activation")
}
pub fn terminated(d: &str) -> String {
    key(d, "terminated")
}
pub fn lifecycle(d: &str) -> String {
    key(d, "lifecycle")
}
/// Spot interruption warnings of a pool: zset instance id → ms of the warning.
pub fn interruptions(d: &str, pool: &str) -> String {
    key(d, &format!("interruptions:{pool}"))
}
pub fn gpu_utilization(d: &str) -> String {
    key(d, "gpu-utilization")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_carry_the_hash_tag() {
        assert_eq!(super::instances("chat"), "scale0:{chat}:instances");
        assert_eq!(super::inflight("chat", "i-1"), "scale0:{chat}:inflight:i-1");
    }
}
