//! The events that trigger the functions, as Lambda delivers them (JSON), parsed into
//! the `aws_lambda_events` types. One function can receive several kinds, so each
//! handler's event is an enum told apart by the fields AWS documents (`source`,
//! `detail-type`, `eventSource`). Anything else is a clear [`HandlerError::Malformed`]
//! naming what was expected; nothing here panics on input. [`alarm`] reads what the
//! scaler uses of an alarm (its deployment, its GPU utilisation datapoint).
//!
//! | handler | event | AWS shape |
//! | --- | --- | --- |
//! | scaler | tick | EventBridge `Scheduled Event` from `aws.events` |
//! | scaler | alarm | EventBridge `CloudWatch Alarm State Change` from `aws.cloudwatch`, or an alarm's direct Lambda action (`alarmData`) |
//! | scaler | control | Amazon MQ for RabbitMQ event source (`eventSource: aws:rmq`), base64 bodies holding [`ControlEvent`] JSON |
//! | scheduler | schedule | the EventBridge Scheduler target input: [`ScheduleInvocation`] |
//! | lifecycle | Auto Scaling | EventBridge events from `aws.autoscaling` (lifecycle actions, launch/terminate results) |
//! | lifecycle | EC2 state | EventBridge `EC2 Instance State-change Notification` from `aws.ec2` |
//! | lifecycle | Spot | EventBridge `EC2 Spot Instance Interruption Warning` and `EC2 Instance Rebalance Recommendation` from `aws.ec2` |

use aws_lambda_events::autoscaling::AutoScalingEvent;
use aws_lambda_events::cloudwatch_alarms::{CloudWatchAlarm, CloudWatchAlarmData};
use aws_lambda_events::cloudwatch_events::ec2::InstanceStateChange;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::rabbitmq::{RabbitMqEvent, RabbitMqMessage};
use base64::Engine;
use chrono::{DateTime, Utc};
use scale0_core::contract::ControlEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::HandlerError;

/// An alarm state change delivered by EventBridge.
pub type AlarmStateChange = EventBridgeEvent<CloudWatchAlarmData>;
/// An EC2 instance state change delivered by EventBridge.
pub type InstanceStateChangeEvent = EventBridgeEvent<InstanceStateChange>;

/// What the scaler function receives.
#[derive(Debug, Clone)]
pub enum ScalerEvent {
    /// The periodic tick: every deployment, with a health sweep and a reconcile.
    Tick(EventBridgeEvent),
    /// A CloudWatch alarm changed state (through EventBridge).
    Alarm(AlarmStateChange),
    /// A CloudWatch alarm's direct Lambda action.
    AlarmAction(CloudWatchAlarm),
    /// Control events from `scale0.control` through the Amazon MQ event source.
    Control(RabbitMqEvent),
    /// Control events already decoded (the local runner consumes the queue itself).
    ControlEvents(Vec<ControlEvent>),
    /// Wake deployments for another reason (the scheduler function, the local runner).
    Wake(Wake),
}

/// A wake-up that is not an AWS event. JSON: `{"wake": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wake {
    /// Deployments to evaluate; empty means all.
    #[serde(default)]
    pub deployments: Vec<String>,
    /// What woke them, for the decision log.
    pub trigger: String,
    /// An id to dedupe on (a repeated wake with the same id changes nothing).
    #[serde(default)]
    pub id: Option<String>,
    /// Run the health sweep and reconcile, as a tick does.
    #[serde(default)]
    pub sweep: bool,
}

/// What the lifecycle function receives.
#[derive(Debug, Clone)]
pub enum LifecycleEvent {
    AutoScaling(AutoScalingEvent),
    InstanceState(InstanceStateChangeEvent),
    Spot(SpotEvent),
}

/// The `detail` of the two EC2 Spot events (documented in the EC2 User Guide, "Spot
/// Instance interruption notices" and "EC2 instance rebalance recommendations").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotDetail {
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    /// `terminate`, `stop` or `hibernate`; warnings only.
    #[serde(rename = "instance-action", default)]
    pub instance_action: Option<String>,
}

/// Which Spot event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpotKind {
    /// `EC2 Spot Instance Interruption Warning`: reclaimed in two minutes.
    InterruptionWarning,
    /// `EC2 Instance Rebalance Recommendation`: at elevated risk of interruption.
    RebalanceRecommendation,
}

/// A Spot event delivered by EventBridge.
#[derive(Debug, Clone)]
pub struct SpotEvent {
    pub kind: SpotKind,
    pub event: EventBridgeEvent<SpotDetail>,
}

/// The input an EventBridge Scheduler schedule passes to the scheduler function
/// (its target `Input`, verbatim). Terraform renders it per scheduled action, with
/// Scheduler's context attributes for the execution id and time:
///
/// ```json
/// {"deployment": "chat", "action": "office-hours",
///  "execution_id": "<aws.scheduler.execution-id>",
///  "scheduled_time": "<aws.scheduler.scheduled-time>"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInvocation {
    pub deployment: String,
    pub action: String,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub scheduled_time: Option<DateTime<Utc>>,
}

fn malformed(what: &str, e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Malformed(format!("{what}: {e}"))
}

/// Parse `v` as `what`; the error names the field at fault (`time: input contains
/// invalid characters`), not only the fault.
fn typed<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Result<T, HandlerError> {
    serde_path_to_error::deserialize(v).map_err(|e| malformed(what, with_path(e)))
}

/// `path: error`, or just the error when it concerns the whole value.
fn with_path<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.into_inner().to_string()
    } else {
        format!("{path}: {}", e.into_inner())
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn describe(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().map(String::as_str).take(8).collect();
            format!("an object with keys [{}]", keys.join(", "))
        }
        Value::Null => "null".into(),
        Value::Array(_) => "an array".into(),
        other => format!("a {}", json_type(other)),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        _ => "value",
    }
}

impl ScalerEvent {
    /// Tell the event kinds apart and parse into their types.
    pub fn from_value(v: Value) -> Result<Self, HandlerError> {
        if !v.is_object() {
            return Err(HandlerError::Malformed(format!(
                "expected an EventBridge, CloudWatch alarm or Amazon MQ event object, got {}",
                describe(&v)
            )));
        }
        if str_field(&v, "eventSource") == Some("aws:rmq") {
            return typed("Amazon MQ (RabbitMQ) event", v).map(ScalerEvent::Control);
        }
        if let Some(wake) = v.get("wake") {
            return typed("wake", wake.clone()).map(ScalerEvent::Wake);
        }
        let source = str_field(&v, "source").unwrap_or_default().to_string();
        let detail_type = str_field(&v, "detail-type").unwrap_or_default().to_string();
        match (source.as_str(), detail_type.as_str()) {
            ("aws.events", "Scheduled Event") => {
                typed("EventBridge scheduled event", v).map(ScalerEvent::Tick)
            }
            ("aws.cloudwatch", "CloudWatch Alarm State Change") => {
                typed("CloudWatch alarm state change", v).map(ScalerEvent::Alarm)
            }
            ("aws.cloudwatch", _) if v.get("alarmData").is_some() => {
                typed("CloudWatch alarm action", v).map(ScalerEvent::AlarmAction)
            }
            ("", "") => Err(HandlerError::Malformed(format!(
                "not an EventBridge, CloudWatch alarm or Amazon MQ event (no `source`, \
                 `detail-type` or `eventSource`): got {}",
                describe(&v)
            ))),
            _ => Err(HandlerError::Malformed(format!(
                "the scaler takes scheduled events (aws.events), alarm state changes \
                 (aws.cloudwatch, or an alarm action with `alarmData`) and Amazon MQ events, \
                 not source `{source}` detail-type `{detail_type}`"
            ))),
        }
    }
}

impl LifecycleEvent {
    pub fn from_value(v: Value) -> Result<Self, HandlerError> {
        let source = str_field(&v, "source").unwrap_or_default().to_string();
        let detail_type = str_field(&v, "detail-type").unwrap_or_default().to_string();
        match (source.as_str(), detail_type.as_str()) {
            ("aws.autoscaling", _) => {
                typed("EC2 Auto Scaling event", v).map(LifecycleEvent::AutoScaling)
            }
            ("aws.ec2", "EC2 Instance State-change Notification") => {
                typed("EC2 instance state-change notification", v)
                    .map(LifecycleEvent::InstanceState)
            }
            ("aws.ec2", "EC2 Spot Instance Interruption Warning") => {
                typed("EC2 Spot Instance Interruption Warning", v).map(|event| {
                    LifecycleEvent::Spot(SpotEvent {
                        kind: SpotKind::InterruptionWarning,
                        event,
                    })
                })
            }
            ("aws.ec2", "EC2 Instance Rebalance Recommendation") => {
                typed("EC2 Instance Rebalance Recommendation", v).map(|event| {
                    LifecycleEvent::Spot(SpotEvent {
                        kind: SpotKind::RebalanceRecommendation,
                        event,
                    })
                })
            }
            _ if !v.is_object() => Err(HandlerError::Malformed(format!(
                "expected an EventBridge event object, got {}",
                describe(&v)
            ))),
            _ => Err(HandlerError::Malformed(format!(
                "the lifecycle handler takes EC2 Auto Scaling events (aws.autoscaling), \
                 EC2 instance state-change notifications, Spot interruption warnings and \
                 rebalance recommendations (aws.ec2), not source `{source}` detail-type \
                 `{detail_type}`"
            ))),
        }
    }
}

impl ScheduleInvocation {
    pub fn from_value(v: Value) -> Result<Self, HandlerError> {
        if !v.is_object() {
            return Err(HandlerError::Malformed(format!(
                "expected the schedule's JSON input {{\"deployment\", \"action\"}}, got {}",
                describe(&v)
            )));
        }
        typed("EventBridge Scheduler input", v)
    }
}

/// Why one Amazon MQ message was not used: a fixed reason (counted per batch) and the
/// detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// Decode one Amazon MQ message body (base64) into a control event.
pub fn decode_control(message: &RabbitMqMessage) -> Result<ControlEvent, Rejection> {
    let data = message
        .data
        .as_deref()
        .ok_or_else(|| Rejection::new("no data", "message has no data"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Rejection::new("not base64", format!("data is not base64: {e}")))?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        Rejection::new(
            "not a control event",
            format!("data is not a control event: {}", with_path(e)),
        )
    })
}

/// A string field of an Auto Scaling event's `detail`.
pub fn detail_str<'a>(event: &'a AutoScalingEvent, key: &str) -> Option<&'a str> {
    event.detail.get(key).and_then(Value::as_str)
}

pub mod alarm {
    //! CloudWatch alarms: which deployment an alarm speaks for, and the GPU
    //! utilisation datapoint it may carry.

    use aws_lambda_events::cloudwatch_alarms::{
        CloudWatchAlarm, CloudWatchAlarmState, CloudWatchAlarmStateReasonData,
        CloudWatchAlarmStateValue,
    };
    use serde_json::Value;

    use super::AlarmStateChange;
    use crate::{HandlerError, Result};

    /// The parts of an alarm state change the scaler uses.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AlarmChange {
        pub name: String,
        pub state: String,
        pub metric: Option<String>,
        /// `Deployment` dimension of the alarm's metric, if any.
        pub dimension: Option<String>,
        /// The latest datapoint, from the state's reason data, with the field it came
        /// from (`detail.state.reasonData.recentDatapoints[2]`).
        pub datapoint: Option<(String, f64)>,
    }

    fn state_name(s: &Option<CloudWatchAlarmState<CloudWatchAlarmStateReasonData>>) -> String {
        match s.as_ref().map(|s| &s.value) {
            Some(CloudWatchAlarmStateValue::Alarm) => "ALARM",
            Some(CloudWatchAlarmStateValue::InsufficientData) => "INSUFFICIENT_DATA",
            Some(_) => "OK",
            None => "unknown",
        }
        .to_string()
    }

    fn datapoint(
        state_field: &str,
        s: &Option<CloudWatchAlarmState<CloudWatchAlarmStateReasonData>>,
    ) -> Option<(String, f64)> {
        let at = format!("{state_field}.reasonData");
        match s.as_ref()?.reason_data.as_ref()? {
            CloudWatchAlarmStateReasonData::Metric(m) => {
                let recent = m.recent_datapoints.len().checked_sub(1).map(|i| {
                    (
                        format!("{at}.recentDatapoints[{i}]"),
                        m.recent_datapoints[i],
                    )
                });
                recent.or_else(|| {
                    let v = m.evaluated_datapoints.first()?.value?;
                    Some((format!("{at}.evaluatedDatapoints[0].value"), v))
                })
            }
            _ => None,
        }
    }

    fn metric_parts(configuration: &Value) -> (Option<String>, Option<String>) {
        let metric = configuration
            .get("metrics")
            .and_then(Value::as_array)
            .and_then(|m| m.first())
            .and_then(|m| m.get("metricStat"))
            .and_then(|s| s.get("metric"));
        let name = metric
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let dimension = metric
            .and_then(|m| m.get("dimensions"))
            .and_then(|d| d.get("Deployment").or_else(|| d.get("deployment")))
            .and_then(Value::as_str)
            .map(str::to_string);
        (name, dimension)
    }

    impl AlarmChange {
        pub fn from_eventbridge(e: &AlarmStateChange) -> Self {
            let (metric, dimension) = metric_parts(&e.detail.configuration);
            AlarmChange {
                name: e.detail.alarm_name.clone(),
                state: state_name(&e.detail.state),
                metric,
                dimension,
                datapoint: datapoint("detail.state", &e.detail.state),
            }
        }

        pub fn from_action(e: &CloudWatchAlarm) -> Self {
            let (metric, dimension) = metric_parts(&e.alarm_data.configuration);
            AlarmChange {
                name: e.alarm_data.alarm_name.clone(),
                state: state_name(&e.alarm_data.state),
                metric,
                dimension,
                datapoint: datapoint("alarmData.state", &e.alarm_data.state),
            }
        }

        /// The deployment this alarm speaks for: its metric's `Deployment` dimension,
        /// else the longest deployment name the alarm name starts with (after an
        /// optional `scale0-`), followed by the end or one of `-._:/`.
        pub fn deployment<'a>(&self, names: impl Iterator<Item = &'a str>) -> Option<String> {
            let names: Vec<&str> = names.collect();
            if let Some(d) = &self.dimension
                && names.contains(&d.as_str())
            {
                return Some(d.clone());
            }
            let rest = self.name.strip_prefix("scale0-").unwrap_or(&self.name);
            names
                .into_iter()
                .filter(|n| {
                    rest.strip_prefix(n).is_some_and(|tail| {
                        tail.is_empty() || tail.starts_with(['-', '.', '_', ':', '/'])
                    })
                })
                .max_by_key(|n| n.len())
                .map(str::to_string)
        }

        /// A GPU utilisation metric's latest value as a share: a share in [0, 1] as
        /// it is, a percentage in (1, 100] divided by 100. Anything else (−50, 1e308)
        /// is a broken metric, refused naming the datapoint's field rather than
        /// clamped into a value that would fire step rules.
        pub fn gpu_utilization(&self) -> Result<Option<f64>> {
            let Some(metric) = self.metric.as_deref().map(str::to_ascii_lowercase) else {
                return Ok(None);
            };
            if !(metric.contains("gpu") && metric.contains("util")) {
                return Ok(None);
            }
            let Some((field, v)) = &self.datapoint else {
                return Ok(None);
            };
            match *v {
                v if (0.0..=1.0).contains(&v) => Ok(Some(v)),
                v if v > 1.0 && v <= 100.0 => Ok(Some(v / 100.0)),
                v => Err(HandlerError::Malformed(format!(
                    "{field}: GPU utilisation {} of alarm `{}` is neither a share in [0, 1] \
                     nor a percentage in [0, 100]",
                    // As JSON writes it: 1e308, not 309 digits.
                    serde_json::Number::from_f64(v).map_or(v.to_string(), |n| n.to_string()),
                    self.name
                ))),
            }
        }
    }
}
