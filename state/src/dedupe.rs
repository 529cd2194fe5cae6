//! Remembering what was already done, so repeats change nothing.
//!
//! - Event ids (`SET NX` with an expiry): a control event, alarm or lifecycle
//!   notification delivered twice is handled once.
//! - Requests' `message_id`s have their own module, [`crate::idempotency`].

use std::time::Duration;

use redis::AsyncCommands;
use redis::SetExpiry;
use redis::SetOptions;

use crate::{Result, Store, keys};

impl Store {
    /// True the first time `event_id` is seen within `ttl`.
    pub async fn first_sighting(
        &self,
        deployment: &str,
        event_id: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let mut c = self.conn();
        let opts = SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(SetExpiry::PX(ttl.as_millis().max(1) as u64));
        let set: Option<String> = c
            .set_options(keys::event(deployment, event_id), 1, opts)
            .await?;
        Ok(set.is_some())
    }

    /// Forget an event id recorded by [`Store::first_sighting`], so a retry of an
    /// event whose handling failed part-way is handled again.
    pub async fn forget_event(&self, deployment: &str, event_id: &str) -> Result<()> {
        let _: () = self.conn().del(keys::event(deployment, event_id)).await?;
        Ok(())
    }
}
