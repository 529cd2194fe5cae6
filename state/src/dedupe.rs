//! Remembering what was already done, so repeats change nothing.
//!
//! - Event ids (`SET NX` with an expiry): a control event, alarm or lifecycle
//!   notification delivered twice is handled once.
//! - Done markers for request `message_id`s: a request redelivered after its reply was
//!   confirmed is acked without running again. The marker holds the reply status.

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

    /// Record that `message_id` was answered with `status`.
    pub async fn mark_done(
        &self,
        deployment: &str,
        message_id: &str,
        status: &str,
        ttl: Duration,
    ) -> Result<()> {
        let mut c = self.conn();
        let _: () = c
            .pset_ex(
                keys::done(deployment, message_id),
                status,
                ttl.as_millis().max(1) as u64,
            )
            .await?;
        Ok(())
    }

    /// The status `message_id` was answered with, if it was.
    pub async fn done_status(&self, deployment: &str, message_id: &str) -> Result<Option<String>> {
        let mut c = self.conn();
        Ok(c.get(keys::done(deployment, message_id)).await?)
    }
}
