//! What the worker tells the control plane on `scale0.control`: activation (requests
//! wait with nothing ready or booting), pressure (demand at the panic threshold) and a
//! failing instance. Activation and pressure are rate-limited across workers in Redis;
//! each event is published with a confirm in the background.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use scale0_core::contract::{ControlEvent, ControlEventKind};
use tokio::time::Instant;

use super::Ctx;

impl Ctx {
    /// Publish a control event (confirmed in the background).
    pub fn control(self: &Arc<Self>, kind: ControlEventKind) {
        let ctx = self.clone();
        tokio::spawn(async move {
            let event = ControlEvent {
                id: format!(
                    "{}-{}",
                    ctx.shared.settings.worker_id,
                    ctx.shared.next_event_id()
                ),
                deployment: ctx.spec.name.clone(),
                at: Utc::now(),
                kind,
            };
            let name = event.kind_name();
            let body = serde_json::to_vec(&event).unwrap_or_default();
            let props = lapin::BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_message_id(event.id.as_str().into())
                // An event describes a moment; the scaler's periodic tick covers what
                // an expired one would have said.
                .with_expiration("600000".into());
            let routing = scale0_core::contract::control_routing_key(&ctx.spec.name, name);
            let give_up = Some(Instant::now() + Duration::from_secs(30));
            match ctx
                .shared
                .broker
                .publish(
                    scale0_core::contract::CONTROL_EXCHANGE,
                    &routing,
                    false,
                    &body,
                    props,
                    give_up,
                )
                .await
            {
                Ok(_) => {
                    ctx.metrics.control_events.inc(name);
                    tracing::info!(deployment = %ctx.spec.name, event = name, id = %event.id, "control event published");
                }
                Err(e) => {
                    tracing::warn!(deployment = %ctx.spec.name, event = name, error = %e, "control event not published")
                }
            }
        });
    }
}

/// Tell the scaler that requests wait with nothing ready or booting, within the
/// rate limit all workers share.
pub(super) fn activate(ctx: &Arc<Ctx>, held: u64) {
    let ctx = ctx.clone();
    let interval = ctx.shared.settings.activation_interval;
    tokio::spawn(async move {
        let allowed = match ctx
            .shared
            .store
            .try_activation(&ctx.spec.name, interval)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                // Better one activation too many than a fleet left at zero.
                ctx.shared.metrics.redis_errors.inc();
                tracing::warn!(deployment = %ctx.spec.name, error = %e, "activation rate limit unavailable; sending anyway");
                true
            }
        };
        if allowed {
            ctx.control(ControlEventKind::Activation { held });
        }
    });
}

/// Tell the scaler demand is at the panic threshold, at most once per
/// `pressure_interval` across workers.
pub(super) fn pressure(ctx: &Arc<Ctx>, demand: u64, capacity: u64) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let interval = ctx.shared.settings.pressure_interval;
        if let Ok(true) = ctx
            .shared
            .store
            .try_signal(&ctx.spec.name, "pressure", interval)
            .await
        {
            ctx.control(ControlEventKind::Pressure { demand, capacity });
        }
    });
}
