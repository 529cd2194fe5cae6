//! A hand-written provider for tests and the simulator: it remembers what it was asked
//! to do, keeps a list of "running" instances, and fails on demand.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use scale0_core::config::{Deployment, Pool};
use scale0_core::contract::InstanceRecord;
use scale0_state::lifecycle::PendingLifecycleAction;

use super::{Provider, ProviderError, ProviderInstance, ProviderResult, ProviderStatus, Started};

#[derive(Debug, Default)]
struct State {
    /// `deployment/pool` → instances.
    running: BTreeMap<String, Vec<ProviderInstance>>,
    /// `deployment/pool` → desired count (by-count mode).
    counts: BTreeMap<String, u32>,
    /// `deployment/pool` → the error every call for the pool returns.
    failing: BTreeMap<String, ProviderError>,
    /// Largest count a by-count pool accepts.
    max: BTreeMap<String, u32>,
    started: Vec<String>,
    stopped: Vec<String>,
    completed: Vec<String>,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct FakeProvider {
    by_count: bool,
    state: Mutex<State>,
}

fn key(spec: &Deployment, pool: &Pool) -> String {
    format!("{}/{}", spec.name, pool.name)
}

impl FakeProvider {
    /// Launches one instance per placeholder, like the local provider.
    pub fn per_instance() -> Self {
        Self::default()
    }

    /// Launches by desired count, like an Auto Scaling group.
    pub fn by_count() -> Self {
        FakeProvider {
            by_count: true,
            ..Self::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call for `deployment/pool` fails with `error` until [`Self::heal`].
    pub fn fail(&self, deployment: &str, pool: &str, error: ProviderError) {
        self.state()
            .failing
            .insert(format!("{deployment}/{pool}"), error);
    }

    pub fn heal(&self, deployment: &str, pool: &str) {
        self.state().failing.remove(&format!("{deployment}/{pool}"));
    }

    /// A by-count pool accepts at most `max`.
    pub fn set_max(&self, deployment: &str, pool: &str, max: u32) {
        self.state().max.insert(format!("{deployment}/{pool}"), max);
    }

    /// Ids passed to `start`, in order.
    pub fn started(&self) -> Vec<String> {
        self.state().started.clone()
    }

    /// Ids passed to `stop`, in order.
    pub fn stopped(&self) -> Vec<String> {
        self.state().stopped.clone()
    }

    /// Instance ids whose lifecycle action was completed.
    pub fn completed(&self) -> Vec<String> {
        self.state().completed.clone()
    }

    /// The desired count last set for a by-count pool.
    pub fn count(&self, deployment: &str, pool: &str) -> Option<u32> {
        self.state()
            .counts
            .get(&format!("{deployment}/{pool}"))
            .copied()
    }

    /// Pretend the provider runs `id` in the pool (an instance it started by itself).
    pub fn add_running(&self, deployment: &str, pool: &str, id: &str, endpoint: Option<&str>) {
        self.state()
            .running
            .entry(format!("{deployment}/{pool}"))
            .or_default()
            .push(ProviderInstance {
                id: id.into(),
                status: ProviderStatus::Running,
                endpoint: endpoint.map(Into::into),
                launched_at: None,
            });
    }

    /// Pretend `id` vanished (crashed, reclaimed).
    pub fn vanish(&self, id: &str) {
        for list in self.state().running.values_mut() {
            list.retain(|i| i.id != id);
        }
    }

    fn check(&self, k: &str) -> ProviderResult<()> {
        match self.state().failing.get(k) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Provider for FakeProvider {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn launches_each(&self) -> bool {
        !self.by_count
    }

    fn list<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
    ) -> BoxFuture<'a, ProviderResult<Vec<ProviderInstance>>> {
        let k = key(spec, pool);
        let out = self
            .check(&k)
            .map(|()| self.state().running.get(&k).cloned().unwrap_or_default());
        Box::pin(async move { out })
    }

    fn start<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
        placeholder: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<Option<Started>>> {
        let k = key(spec, pool);
        let out = self.check(&k).map(|()| {
            if self.by_count {
                return None;
            }
            let endpoint = Some(format!("http://fake.invalid/{}", placeholder.id));
            let mut s = self.state();
            s.started.push(placeholder.id.clone());
            s.running.entry(k).or_default().push(ProviderInstance {
                id: placeholder.id.clone(),
                status: ProviderStatus::Starting,
                endpoint: endpoint.clone(),
                launched_at: Some(placeholder.launched_at),
            });
            Some(Started {
                id: placeholder.id.clone(),
                endpoint,
            })
        });
        Box::pin(async move { out })
    }

    fn ensure_count<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
        wanted: u32,
    ) -> BoxFuture<'a, ProviderResult<u32>> {
        let k = key(spec, pool);
        let out = self.check(&k).map(|()| {
            if !self.by_count {
                return wanted;
            }
            let mut s = self.state();
            let granted = s.max.get(&k).map_or(wanted, |m| wanted.min(*m));
            s.counts.insert(k, granted);
            granted
        });
        Box::pin(async move { out })
    }

    fn stop<'a>(
        &'a self,
        spec: &'a Deployment,
        instance: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<()>> {
        let k = format!("{}/{}", spec.name, instance.pool);
        let out = self.check(&k).map(|()| {
            let mut s = self.state();
            s.stopped.push(instance.id.clone());
            if let Some(list) = s.running.get_mut(&k) {
                list.retain(|i| i.id != instance.id);
            }
            if self.by_count
                && let Some(c) = s.counts.get_mut(&k)
            {
                *c = c.saturating_sub(1);
            }
        });
        Box::pin(async move { out })
    }

    fn complete_lifecycle_action<'a>(
        &'a self,
        action: &'a PendingLifecycleAction,
    ) -> BoxFuture<'a, ProviderResult<()>> {
        self.state().completed.push(action.instance_id.clone());
        Box::pin(async { Ok(()) })
    }

    fn endpoint_for(&self, instance_id: &str) -> Option<String> {
        Some(format!("http://fake.invalid/{instance_id}"))
    }
}
