//! Timeline tests of the worker's rules: each test feeds events at chosen instants and
//! reads the effects, one comment per step. The payload is a label naming the request.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::config::Config;
use crate::contract::{InstanceRecord, InstanceState};

const SPEC: &str = r#"
    [[deployments]]
    name = "chat"
    request_deadline = "5m"
    expected_service_time = "2s"
    max_held_requests = 4
    [deployments.policy]
    unhealthy_after_failures = 2
    panic_threshold = 2.0
    [[deployments.pools]]
    name = "a10g"
    max_instances = 2
    slots = 1
    price_per_hour_usd = 1.0
    boot_time = "90s"
"#;

type M = Machine<&'static str>;
type Fx = Effect<&'static str>;

fn machine() -> M {
    machine_with(Dispatch::LeastOutstanding, 1)
}

fn machine_with(dispatch: Dispatch, slots: u32) -> M {
    let spec = SPEC.replace("slots = 1", &format!("slots = {slots}"));
    let spec = Config::load(&spec).unwrap().deployments.remove(0);
    Machine::new(
        Rules {
            spec,
            parking: Duration::from_secs(1),
            activation_interval: Duration::from_secs(5),
            dispatch,
        },
        Rng::new(7),
    )
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

fn at(s: f64) -> DateTime<Utc> {
    t0() + TimeDelta::milliseconds((s * 1000.0) as i64)
}

fn record(id: &str, state: InstanceState) -> InstanceRecord {
    InstanceRecord {
        id: id.into(),
        deployment: "chat".into(),
        pool: "a10g".into(),
        state,
        endpoint: Some(format!("http://{id}")),
        launched_at: t0(),
        ready_at: (state == InstanceState::Ready).then_some(t0()),
        draining_since: None,
        failures: 0,
        reclaim_at: None,
    }
}

fn snapshot(instances: &[(&str, InstanceState)]) -> Snapshot {
    Snapshot {
        instances: instances.iter().map(|(id, s)| record(id, *s)).collect(),
        ..Snapshot::default()
    }
}

/// A request named `name` with `priority`, due `deadline_s` seconds after `t0`.
fn req(name: &'static str, priority: u8, deadline_s: f64) -> Arrival<&'static str> {
    Arrival {
        message_id: Some(name.into()),
        priority,
        deadline: at(deadline_s),
        redelivered: false,
        epoch: 1,
        payload: name,
    }
}

/// The effects so far, without the arrival counts (one test reads those).
fn effects(m: &mut M) -> Vec<Fx> {
    m.effects()
        .filter(|e| !matches!(e, Effect::NewArrival))
        .collect()
}

/// The payloads dispatched, with their instance.
fn dispatched(fx: &[Fx]) -> Vec<(&'static str, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Dispatch { job, instance } => Some((job.payload, instance.clone())),
            _ => None,
        })
        .collect()
}

fn shed(fx: &[Fx]) -> Vec<(&'static str, u64)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Shed {
                job, retry_after, ..
            } => Some((job.payload, *retry_after)),
            _ => None,
        })
        .collect()
}

fn take_job(fx: Vec<Fx>) -> Box<Job<&'static str>> {
    fx.into_iter()
        .find_map(|e| match e {
            Effect::Dispatch { job, .. } => Some(job),
            _ => None,
        })
        .expect("a dispatch")
}

#[test]
fn held_requests_go_out_by_priority_then_age() {
    let mut m = machine();
    // Nothing ready yet: three requests are held.
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Booting)]));
    for r in [
        req("low", 0, 300.0),
        req("high", 9, 300.0),
        req("mid", 5, 300.0),
    ] {
        m.arrive(at(1.0), r);
    }
    m.advance(at(1.0));
    assert!(dispatched(&effects(&mut m)).is_empty());
    assert_eq!(m.held(), 3);
    // The instance is ready with one slot: the highest priority goes first.
    m.snapshot(at(2.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.advance(at(2.0));
    let fx = effects(&mut m);
    assert_eq!(dispatched(&fx), [("high", "i-1".to_string())]);
    // Its slot frees: the next priority, then the lowest.
    let job = take_job(fx);
    m.released("i-1", Outcome::Ok);
    m.finished(job.seq);
    m.advance(at(3.0));
    assert_eq!(dispatched(&effects(&mut m)), [("mid", "i-1".to_string())]);
}

#[test]
fn at_the_held_limit_the_lowest_priority_and_newest_is_shed_with_retry_after() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Booting)]));
    // max_held_requests = 4: the fifth arrival pushes out the newest of the lowest
    // priority, which may be an older request than the one arriving.
    for (name, p) in [("a", 5), ("b", 0), ("c", 5), ("d", 0), ("e", 9)] {
        m.arrive(at(1.0), req(name, p, 300.0));
    }
    let fx = effects(&mut m);
    let gone = shed(&fx);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].0, "d");
    // Told to come back once what is ahead has drained: one boot of 90 s with 1 s
    // elapsed, plus five requests of 2 s on one slot.
    assert!((95..=101).contains(&gone[0].1), "retry-after {}", gone[0].1);
    assert!(matches!(
        &fx.iter().find(|e| matches!(e, Effect::Shed { .. })),
        Some(Effect::Shed {
            reason: ShedReason::HeldLimit { limit: 4 },
            ..
        })
    ));
    assert_eq!(m.held(), 4);
}

#[test]
fn a_request_that_cannot_start_before_its_deadline_is_shed_on_arrival() {
    let mut m = machine();
    // A boot 90 s away and a deadline in 30 s: shed at once, not held to expire.
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Booting)]));
    m.arrive(at(0.0), req("hurried", 0, 30.0));
    let fx = effects(&mut m);
    assert_eq!(shed(&fx).len(), 1);
    assert!(matches!(
        fx.iter().find(|e| matches!(e, Effect::Shed { .. })),
        Some(Effect::Shed {
            reason: ShedReason::Wait { .. },
            ..
        })
    ));
    // One with time enough is held.
    m.arrive(at(0.0), req("patient", 0, 200.0));
    assert!(shed(&effects(&mut m)).is_empty());
    assert_eq!(m.held(), 1);
}

#[test]
fn before_the_first_snapshot_nothing_is_shed_for_its_wait() {
    let mut m = machine();
    // The capacity is unknown: a request with little time is held, not shed.
    m.arrive(at(0.0), req("early", 0, 3.0));
    assert!(effects(&mut m).is_empty());
    // Its deadline passes while held: it is answered `expired` with the time waited.
    assert_eq!(m.next_wakeup(), Some(at(3.0)));
    m.advance(at(3.0));
    let fx = effects(&mut m);
    assert!(matches!(
        fx.as_slice(),
        [Effect::Expire { job, waited }] if job.payload == "early" && *waited == Duration::from_secs(3)
    ));
    // Its reply is being sent: it is working until finished.
    assert_eq!((m.held(), m.working()), (0, 1));
}

#[test]
fn a_job_back_from_service_after_its_deadline_expires() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.arrive(at(0.0), req("slow", 0, 10.0));
    m.advance(at(0.0));
    let job = take_job(effects(&mut m));
    // The attempt failed at 11 s, past the deadline: no retry, it expires.
    m.released("i-1", Outcome::Failure);
    m.retry(at(11.0), job);
    let fx = effects(&mut m);
    assert!(matches!(fx.as_slice(), [Effect::Expire { .. }]));
}

#[test]
fn a_retry_goes_to_another_instance_when_one_is_free() {
    let mut m = machine();
    m.snapshot(
        at(0.0),
        snapshot(&[("i-1", InstanceState::Ready), ("i-2", InstanceState::Ready)]),
    );
    m.arrive(at(0.0), req("r", 0, 60.0));
    m.advance(at(0.0));
    let fx = effects(&mut m);
    let first = dispatched(&fx)[0].1.clone();
    let mut job = take_job(fx);
    // It failed there; the shell notes the instance to avoid and hands it back.
    m.released(&first, Outcome::Failure);
    job.avoid.push(first.clone());
    job.attempts = 1;
    m.retry(at(1.0), job);
    m.advance(at(1.0));
    let fx = effects(&mut m);
    let second = &dispatched(&fx)[0].1;
    assert_ne!(*second, first);
    // With only the failed instance free, the retry still goes there.
    let job = take_job(fx);
    m.released(second, Outcome::Ok);
    m.lease_refused(at(2.0), job, second, false);
    m.advance(at(2.0));
    assert_eq!(dispatched(&effects(&mut m))[0].1, first);
}

#[test]
fn a_refused_lease_holds_the_job_and_rests_the_instance() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.arrive(at(0.0), req("r", 0, 60.0));
    m.advance(at(0.0));
    let job = take_job(effects(&mut m));
    // Another worker holds the slot: the job is held and i-1 rests for 50 ms.
    m.lease_refused(at(0.1), job, "i-1", false);
    m.advance(at(0.1));
    assert!(dispatched(&effects(&mut m)).is_empty());
    assert_eq!(m.next_wakeup(), Some(at(0.15)));
    // Still full by the snapshot's count until the next snapshot frees it, and
    // nothing to wake for meanwhile.
    m.advance(at(0.15));
    assert!(dispatched(&effects(&mut m)).is_empty());
    assert_eq!(m.next_wakeup(), Some(at(60.0)), "only the deadline");
    m.snapshot(at(0.2), snapshot(&[("i-1", InstanceState::Ready)]));
    m.advance(at(0.2));
    let job = take_job(effects(&mut m));
    // A Redis error rests it ten times longer.
    m.lease_refused(at(1.0), job, "i-1", true);
    assert_eq!(m.next_wakeup(), Some(at(1.5)));
}

#[test]
fn failures_make_an_instance_unhealthy_and_a_success_clears_them() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    // unhealthy_after_failures = 2: after two failures nothing goes to i-1.
    for n in 0..2 {
        m.arrive(at(0.0), req(["a", "b"][n], 0, 60.0));
        m.advance(at(0.0));
        let job = take_job(effects(&mut m));
        m.released("i-1", Outcome::Failure);
        m.finished(job.seq);
    }
    m.arrive(at(1.0), req("c", 0, 300.0));
    m.advance(at(1.0));
    assert!(effects(&mut m).is_empty(), "held, not dispatched");
    // The registry says it recovered (a snapshot resets this worker's count), and a
    // success after recorded failures asks the shell to clear them in the registry.
    let mut s = snapshot(&[("i-1", InstanceState::Ready)]);
    s.instances[0].failures = 1;
    m.snapshot(at(2.0), s);
    m.advance(at(2.0));
    let job = take_job(effects(&mut m));
    m.released("i-1", Outcome::Ok);
    m.finished(job.seq);
    assert!(matches!(
        effects(&mut m).as_slice(),
        [Effect::ClearFailures { instance }] if instance == "i-1"
    ));
}

#[test]
fn a_copy_of_a_held_or_served_request_joins_it_until_it_is_finished() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Booting)]));
    m.arrive(at(0.0), req("r", 0, 300.0));
    assert!(matches!(
        m.effects().collect::<Vec<_>>().as_slice(),
        [Effect::NewArrival]
    ));
    // A redelivered copy while it is held: one job answers both.
    let copy = Arrival {
        redelivered: true,
        payload: "copy",
        ..req("r", 0, 300.0)
    };
    m.arrive(at(1.0), copy);
    let fx = effects(&mut m);
    assert!(matches!(
        fx.as_slice(),
        [Effect::Join {
            seq: 1,
            copy: "copy"
        }]
    ));
    assert_eq!(m.held(), 1);
    // Served and finished: a later copy starts a job of its own (which finds the
    // kept reply), and is not counted as a new arrival.
    m.snapshot(at(90.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.advance(at(90.0));
    let job = take_job(effects(&mut m));
    m.released("i-1", Outcome::Ok);
    m.finished(job.seq);
    let late = Arrival {
        redelivered: true,
        payload: "late",
        ..req("r", 0, 300.0)
    };
    m.arrive(at(91.0), late);
    m.advance(at(91.0));
    assert_eq!(dispatched(&effects(&mut m)), [("late", "i-1".to_string())]);
}

#[test]
fn a_parked_job_looks_again_after_the_parking_interval() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.arrive(at(0.0), req("r", 0, 60.0));
    m.advance(at(0.0));
    let job = take_job(effects(&mut m));
    // Another worker runs it: parked for 1 s, then dispatched again.
    m.released("i-1", Outcome::Neutral);
    m.park(at(0.5), job);
    m.advance(at(0.5));
    assert!(dispatched(&effects(&mut m)).is_empty());
    assert_eq!(m.next_wakeup(), Some(at(1.5)));
    m.advance(at(1.5));
    assert_eq!(dispatched(&effects(&mut m)).len(), 1);
}

#[test]
fn activation_when_nothing_can_serve_at_most_once_per_interval() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[]));
    m.arrive(at(0.0), req("a", 0, 300.0));
    assert!(
        effects(&mut m)
            .iter()
            .any(|e| matches!(e, Effect::Activate { held: 1 }))
    );
    // Another arrival within the 5 s interval does not signal again; after it does.
    m.arrive(at(1.0), req("b", 0, 300.0));
    assert!(
        !effects(&mut m)
            .iter()
            .any(|e| matches!(e, Effect::Activate { .. }))
    );
    m.arrive(at(6.0), req("c", 0, 300.0));
    assert!(
        effects(&mut m)
            .iter()
            .any(|e| matches!(e, Effect::Activate { held: 3 }))
    );
}

#[test]
fn pressure_when_demand_reaches_the_panic_threshold() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Booting)]));
    // One slot booting, panic_threshold 2: the second held request is pressure.
    m.arrive(at(1.0), req("a", 0, 300.0));
    m.snapshot(at(1.0), snapshot(&[("i-1", InstanceState::Booting)]));
    assert!(
        !effects(&mut m)
            .iter()
            .any(|e| matches!(e, Effect::Pressure { .. }))
    );
    m.arrive(at(2.0), req("b", 0, 300.0));
    m.snapshot(at(2.0), snapshot(&[("i-1", InstanceState::Booting)]));
    assert!(effects(&mut m).iter().any(|e| matches!(
        e,
        Effect::Pressure {
            demand: 2,
            capacity: 1
        }
    )));
}

#[test]
fn a_lost_connection_drops_the_jobs_only_it_delivered() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Booting)]));
    m.arrive(at(0.0), req("old", 0, 300.0));
    m.arrive(
        at(0.0),
        Arrival {
            epoch: 2,
            ..req("new", 0, 300.0)
        },
    );
    // A copy of "old" came again on epoch 2: it survives epoch 1's loss.
    m.arrive(
        at(0.0),
        Arrival {
            epoch: 2,
            ..req("both", 0, 300.0)
        },
    );
    m.arrive(
        at(0.0),
        Arrival {
            epoch: 1,
            redelivered: true,
            ..req("both", 0, 300.0)
        },
    );
    let dropped: Vec<_> = m
        .connection_lost(1)
        .into_iter()
        .map(|j| j.payload)
        .collect();
    assert_eq!(dropped, ["old"]);
    assert_eq!(m.held(), 2);
    // A job out with the shell when a copy came on epoch 2 is kept when it comes back
    // and epoch 1 is lost.
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.advance(at(0.0));
    let out = take_job(effects(&mut m));
    let out_name = out.payload;
    m.arrive(
        at(0.0),
        Arrival {
            epoch: 3,
            redelivered: true,
            ..req(out.payload, 0, 300.0)
        },
    );
    m.released("i-1", Outcome::Neutral);
    m.retry(at(0.5), out);
    let dropped: Vec<_> = m
        .connection_lost(2)
        .into_iter()
        .map(|j| j.payload)
        .collect();
    assert_eq!(
        (out_name, dropped.as_slice(), m.held()),
        ("new", &["both"][..], 1)
    );
    // The dropped request's id is free again: its redelivery is a new job.
    effects(&mut m);
    m.arrive(at(1.0), req("old", 0, 300.0));
    assert!(
        !effects(&mut m)
            .iter()
            .any(|e| matches!(e, Effect::Join { .. }))
    );
}

#[test]
fn a_drain_requeues_what_is_held_and_ends_when_the_working_finish() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.arrive(at(0.0), req("served", 0, 300.0));
    m.arrive(at(0.0), req("held", 0, 300.0));
    m.advance(at(0.0));
    let job = take_job(effects(&mut m));
    // Shutdown: the held request goes back to the broker; the served one finishes.
    assert_eq!(m.drain(), 1);
    m.advance(at(1.0));
    let fx = effects(&mut m);
    assert!(matches!(fx.as_slice(), [Effect::Requeue { job }] if job.payload == "held"));
    // New deliveries go straight back; a job back for a retry after its first
    // attempt is still served (only jobs never tried are requeued).
    m.arrive(at(1.0), req("late", 0, 300.0));
    assert!(
        matches!(effects(&mut m).as_slice(), [Effect::Requeue { job }] if job.payload == "late")
    );
    m.released("i-1", Outcome::Failure);
    let mut job = job;
    job.attempts = 1;
    m.retry(at(2.0), job);
    m.advance(at(2.0));
    let job = take_job(effects(&mut m));
    m.released("i-1", Outcome::Ok);
    m.finished(job.seq);
    m.advance(at(3.0));
    // (The success after a failure also clears the instance's count.)
    assert!(matches!(
        effects(&mut m).as_slice(),
        [Effect::ClearFailures { .. }, Effect::Drained]
    ));
    // Said once.
    m.advance(at(4.0));
    assert!(effects(&mut m).is_empty());
}

#[test]
fn an_abort_abandons_the_working_and_ends_the_drain() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.arrive(at(0.0), req("stuck", 0, 300.0));
    m.advance(at(0.0));
    effects(&mut m);
    m.drain();
    m.advance(at(1.0));
    assert!(effects(&mut m).is_empty());
    assert_eq!(m.abort(), 1);
    assert!(matches!(effects(&mut m).as_slice(), [Effect::Drained]));
}

#[test]
fn dispatch_is_seeded_so_a_timeline_replays() {
    let run = || {
        let mut m = machine();
        let ids = ["i-1", "i-2", "i-3"];
        let mut s = Snapshot {
            instances: ids
                .iter()
                .map(|id| record(id, InstanceState::Ready))
                .collect(),
            in_flight: BTreeMap::new(),
            ..Snapshot::default()
        };
        for r in &mut s.instances {
            r.pool = "a10g".into();
        }
        m.snapshot(at(0.0), s);
        m.arrive(at(0.0), req("a", 0, 60.0));
        m.arrive(at(0.0), req("b", 0, 60.0));
        m.advance(at(0.0));
        dispatched(&effects(&mut m))
    };
    assert_eq!(run(), run());
}

#[test]
fn packing_fills_the_busiest_instance_and_least_outstanding_spreads() {
    let two = || {
        let mut s = snapshot(&[("i-1", InstanceState::Ready), ("i-2", InstanceState::Ready)]);
        // i-2 launched later: packing breaks ties toward the earliest launched.
        s.instances[1].launched_at = t0() + TimeDelta::seconds(1);
        s
    };
    let place = |dispatch| {
        let mut m = machine_with(dispatch, 2);
        m.snapshot(at(0.0), two());
        let mut placed = Vec::new();
        for name in ["a", "b"] {
            m.arrive(at(0.0), req(name, 0, 60.0));
            m.advance(at(0.0));
            placed.extend(dispatched(&effects(&mut m)).into_iter().map(|(_, i)| i));
        }
        placed
    };
    // Packing: both on i-1 (the second goes where one is already in flight).
    assert_eq!(place(Dispatch::Packing), ["i-1", "i-1"]);
    // Least outstanding: the second goes to the idle instance.
    let spread = place(Dispatch::LeastOutstanding);
    assert_ne!(spread[0], spread[1]);
}

#[test]
fn an_attempt_is_retried_elsewhere_only_when_worth_it_and_in_time() {
    let mut m = machine();
    m.snapshot(at(0.0), snapshot(&[("i-1", InstanceState::Ready)]));
    m.arrive(at(0.0), req("r", 0, 60.0));
    m.advance(at(0.0));
    let mut job = take_job(effects(&mut m));
    job.attempts = 1;
    let (max, early, late) = (3, at(1.0), at(61.0));
    // A 5xx, a 429 or a broken connection: another instance, while time and
    // attempts remain.
    for a in [
        Attempted::Status(503),
        Attempted::Status(429),
        Attempted::ConnectError,
    ] {
        assert!(retry(&job, a, max, early), "{a:?}");
        assert!(!retry(&job, a, max, late), "{a:?} after the deadline");
    }
    // A timeout took the deadline; a 4xx and a success are answers.
    for a in [
        Attempted::Timeout,
        Attempted::Status(400),
        Attempted::Status(200),
    ] {
        assert!(!retry(&job, a, max, early), "{a:?}");
    }
    job.attempts = max;
    assert!(
        !retry(&job, Attempted::Status(503), max, early),
        "attempts used up"
    );
    // Only failures of the instance count toward unhealthy_after_failures.
    assert_eq!(Attempted::Status(503).outcome(), Outcome::Failure);
    assert_eq!(Attempted::Timeout.outcome(), Outcome::Failure);
    assert_eq!(Attempted::Status(429).outcome(), Outcome::Neutral);
    assert_eq!(Attempted::Status(404).outcome(), Outcome::Neutral);
    assert_eq!(Attempted::Status(200).outcome(), Outcome::Ok);
}
