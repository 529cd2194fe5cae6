//! The Lambda edge, shared by the three binaries: configuration loaded once per cold
//! start, JSON logs, dependencies built from the environment, and the handler wired to
//! `lambda_runtime`.
//!
//! Environment:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `SCALE0_CONFIG` | the configuration as JSON (same schema as the TOML) |
//! | `SCALE0_CONFIG_SSM_PARAMETER` | or: the name of an SSM parameter holding it (`SecureString` is decrypted) |
//! | `SCALE0_CONFIG_FILE` | or: a file path (TOML or JSON), for running a binary by hand |
//! | `SCALE0_REDIS_URL` | Redis (`redis://`, `rediss://`, with AUTH in the URL); default `redis://127.0.0.1:6379` |
//! | `SCALE0_AMQP_URL` | RabbitMQ; default `amqp://guest:guest@127.0.0.1:5672/%2f` |
//! | `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` | log filter; default `info` |
//!
//! The AWS SDK reads its own settings (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`,
//! `AWS_MAX_ATTEMPTS`) and is only loaded when the SSM parameter or the `aws-asg`
//! provider needs it, so a local-provider function starts without it.

use std::sync::Arc;

use anyhow::Context;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use scale0_core::config::{Config, ProviderKind};
use scale0_state::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::broker::AmqpQueueDepth;
use crate::provider::Provider;
use crate::provider::asg::AsgProvider;
use crate::provider::local::LocalProvider;
use crate::{Deps, HandlerError};

pub const CONFIG_ENV: &str = "SCALE0_CONFIG";
pub const CONFIG_SSM_ENV: &str = "SCALE0_CONFIG_SSM_PARAMETER";
pub const CONFIG_FILE_ENV: &str = "SCALE0_CONFIG_FILE";
pub const REDIS_URL_ENV: &str = "SCALE0_REDIS_URL";
pub const AMQP_URL_ENV: &str = "SCALE0_AMQP_URL";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        let kind = match &e {
            HandlerError::Malformed(_) => "MalformedEvent",
            HandlerError::Unknown { .. } => "UnknownName",
            HandlerError::State(_) => "StateStoreError",
            HandlerError::Broker(_) => "BrokerError",
            HandlerError::Provider(_) => "ProviderError",
            HandlerError::Partial { .. } => "PartialFailure",
        };
        Diagnostic {
            error_type: kind.into(),
            error_message: e.to_string(),
        }
    }
}

/// The invocation payload as Lambda delivered it: JSON, or why it is not.
///
/// `lambda_runtime` deserializes the payload before it calls the handler, and answers
/// a payload that does not deserialize itself, with errorType
/// `&lambda_runtime::deserializer::DeserializeError`. This type accepts whatever
/// arrives — truncated or empty JSON, bytes that are not UTF-8, nesting past
/// serde_json's recursion limit (128) — so the handler answers it as
/// `MalformedEvent` like any other bad event.
#[derive(Debug)]
pub struct Payload(pub Result<Value, String>);

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Payload(Value::deserialize(d).map_err(|e| e.to_string())))
    }
}

impl Payload {
    /// The JSON value, or a [`HandlerError::Malformed`] saying why there is none.
    pub fn into_value(self) -> Result<Value, HandlerError> {
        self.0
            .map_err(|e| HandlerError::Malformed(format!("the payload is not JSON: {e}")))
    }
}

/// JSON logs on stdout, one object per line (CloudWatch Logs parses them).
pub fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|_| "info".into());
    // lambda_runtime 1.5 logs every payload at TRACE as UTF-8, and when it is not UTF-8
    // it stops the whole runtime instead of answering the invocation. Its response
    // layer logs nothing else at TRACE, so capping it at DEBUG keeps a `trace` filter
    // from turning one bad payload into a dead function.
    let filter = if filter.contains("trace") {
        format!("{filter},lambda_runtime::layers::api_response=debug")
    } else {
        filter
    };
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// The AWS SDK's configuration from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// Read an SSM parameter's value (decrypted).
pub async fn ssm_parameter(sdk: &aws_config::SdkConfig, name: &str) -> anyhow::Result<String> {
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_ssm::error::DisplayErrorContext(e).to_string()))
        .with_context(|| format!("cannot read SSM parameter {name}"))?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_string)
        .with_context(|| format!("SSM parameter {name} has no value"))
}

/// The configuration from `SCALE0_CONFIG`, `SCALE0_CONFIG_SSM_PARAMETER` or
/// `SCALE0_CONFIG_FILE`, validated. `sdk` is called only for SSM.
pub async fn load_config<F, Fut>(sdk: F) -> anyhow::Result<Config>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = aws_config::SdkConfig>,
{
    use std::os::unix::ffi::OsStringExt;
    // Raw bytes, so a value that is not UTF-8 is reported as such, with its position.
    let (bytes, from) = if let Some(json) = std::env::var_os(CONFIG_ENV) {
        (json.into_vec(), CONFIG_ENV.to_string())
    } else if let Ok(name) = std::env::var(CONFIG_SSM_ENV) {
        (
            ssm_parameter(&sdk().await, &name).await?.into_bytes(),
            format!("SSM parameter {name}"),
        )
    } else if let Ok(path) = std::env::var(CONFIG_FILE_ENV) {
        (
            std::fs::read(&path).with_context(|| format!("cannot read {path}"))?,
            path,
        )
    } else {
        anyhow::bail!(
            "no configuration: set {CONFIG_ENV} (JSON), {CONFIG_SSM_ENV} or {CONFIG_FILE_ENV}"
        );
    };
    let config =
        Config::load_bytes(&bytes).with_context(|| format!("configuration from {from}"))?;
    for w in config.warnings(chrono::Utc::now()) {
        tracing::warn!(config = %from, field = %w.field, "{}", w.message);
    }
    Ok(config)
}

/// Everything a handler needs, from the environment.
pub async fn deps_from_env() -> anyhow::Result<Deps> {
    let sdk = tokio::sync::OnceCell::new();
    let get_sdk = || async { sdk.get_or_init(sdk_config).await.clone() };
    let config = load_config(get_sdk).await?;
    let redis_url = std::env::var(REDIS_URL_ENV).unwrap_or_else(|_| DEFAULT_REDIS_URL.into());
    let amqp_url = std::env::var(AMQP_URL_ENV).unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
    let store = Store::connect(&redis_url).await?;
    let provider: Arc<dyn Provider> = match config.provider.kind {
        ProviderKind::Local => Arc::new(LocalProvider::new(&config.provider.local)),
        ProviderKind::AwsAsg => {
            Arc::new(AsgProvider::new(&get_sdk().await, &config.provider.aws_asg))
        }
    };
    let broker = Arc::new(AmqpQueueDepth::new(amqp_url));
    Ok(Deps::new(config, store, provider, broker.clone()).with_events(broker))
}

/// Run `handler` as a Lambda function: build the dependencies once (cold start),
/// then serve invocations until the runtime stops.
pub async fn serve<H, Fut, O>(name: &'static str, handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value, Arc<Deps>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, HandlerError>> + Send,
    O: Serialize,
{
    init_logging();
    let deps = match deps_from_env().await {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!(function = name, error = format!("{e:#}"), "cannot start");
            return Err(e.into());
        }
    };
    tracing::info!(
        function = name,
        provider = deps.provider.kind(),
        deployments = deps.config.deployments.len(),
        "started"
    );
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| {
        let (deps, handler) = (deps.clone(), handler.clone());
        async move {
            let result = match event.payload.into_value() {
                Ok(value) => handler(value, deps).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::error!(function = name, error = %e, retryable = e.is_retryable(), "invocation failed");
            }
            result
        }
    }))
    .await
}
