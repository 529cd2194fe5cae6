//! `scale0-instance`: a stand-in GPU model server for the scale0 demo and tests.
//!
//! It behaves like an OpenAI-compatible server such as vLLM, as far as scale0 can tell:
//!
//! - it listens at once but is not ready for `--boot-delay` (its readiness path answers
//!   503, inference 503), like a server loading weights;
//! - its readiness path is configurable (`/health` for vLLM and TGI,
//!   `/v2/health/ready` for Triton);
//! - `POST /v1/completions` (the path is configurable) takes the OpenAI completions
//!   subset `{"model", "prompt", "max_tokens"}` and answers after
//!   `prompt_tokens / prefill rate + max_tokens / decode rate`, where tokens are
//!   approximated as characters / 4, rounded up (close to BPE tokenizers on English);
//! - it serves at most `--slots` requests at once; one more is answered 429 with
//!   `retry-after: 1` (`--when-full reject`, the default, so a broken slot limit
//!   upstream is visible) or waits for a slot (`--when-full queue`);
//! - faults on demand: a share of 500s (`--fail-rate`), a share of requests that never
//!   answer (`--hang-rate`), exiting abruptly on the request after the first N
//!   (`--crash-after N`), booting slower than the control plane was told
//!   (`--slow-boot`, added to `--boot-delay`), and never becoming ready (`--never-ready`).
//!
//! `--listen 127.0.0.1:0` picks a free port; the first line on stdout is always
//! `listening on http://<addr>`, so a test or a provider can read the address.
//! `GET /stats` returns counters (served, rejected, in flight, the most ever in flight)
//! for tests. SIGTERM or SIGINT stops accepting and exits once in-flight requests end
//! (at most 10 s later).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::{Parser, ValueEnum};
use scale0_core::duration::HumanDuration;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "scale0-instance",
    version,
    about = "A stand-in GPU model server (OpenAI completions subset) with a boot delay, \
             a latency model, a slot limit and fault injection"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0", env = "SCALE0_INSTANCE_LISTEN")]
    listen: SocketAddr,
    /// Name reported in responses and /stats.
    #[arg(long, default_value = "instance")]
    id: String,
    /// Time from start until the readiness path answers 200 ("90s", "250ms").
    #[arg(long, default_value = "0s")]
    boot_delay: HumanDuration,
    /// Path that answers 200 once booted (vLLM/TGI `/health`, Triton `/v2/health/ready`).
    #[arg(long, default_value = "/health")]
    readiness_path: String,
    /// Path completions are POSTed to.
    #[arg(long, default_value = "/v1/completions")]
    inference_path: String,
    /// Requests served at once.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// What a request beyond the slots gets.
    #[arg(long, value_enum, default_value_t = WhenFull::Reject)]
    when_full: WhenFull,
    /// Prompt tokens processed per second per request; 0 means instantly.
    #[arg(long, default_value_t = 2000.0)]
    prefill_tokens_per_sec: f64,
    /// Tokens generated per second per request; 0 means instantly.
    #[arg(long, default_value_t = 100.0)]
    decode_tokens_per_sec: f64,
    /// `max_tokens` when a request gives none.
    #[arg(long, default_value_t = 16)]
    default_max_tokens: u32,
    /// Share of inference requests answered 500, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Share of inference requests that never answer, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
    /// Exit abruptly (code 3, no answer) on the inference request after the first N.
    #[arg(long)]
    crash_after: Option<u64>,
    /// A fault: boot this much longer than `--boot-delay` (which the local provider sets
    /// from the pool's `boot_time`), like weights loading slower than usual.
    #[arg(long, default_value = "0s")]
    slow_boot: HumanDuration,
    /// Never become ready: the readiness path answers 503 forever.
    #[arg(long)]
    never_ready: bool,
    /// Seed for the fault dice (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

impl Args {
    /// From start until ready: the boot delay and any slow-boot fault.
    fn boot_time(&self) -> Duration {
        self.boot_delay.0 + self.slow_boot.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WhenFull {
    /// Answer 429 with `retry-after: 1`.
    Reject,
    /// Wait for a free slot.
    Queue,
}

struct Instance {
    args: Args,
    started: Instant,
    slots: Semaphore,
    rng: AtomicU64,
    received: AtomicU64,
    served: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    hung: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.args.id)
            .finish()
    }
}

impl Instance {
    fn ready(&self) -> bool {
        !self.args.never_ready && self.started.elapsed() >= self.args.boot_time()
    }

    /// A uniform draw in [0, 1) (SplitMix64; quality is plenty for fault dice).
    fn roll(&self) -> f64 {
        // SplitMix64 is a counter: advancing the shared state by its increment and
        // mixing the old value is one step, safe from concurrent handlers.
        let mut state = self
            .rng
            .fetch_add(scale0_core::rng::SPLITMIX_INCREMENT, Ordering::Relaxed);
        let z = scale0_core::rng::splitmix64(&mut state);
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The OpenAI completions subset this server reads; other fields are ignored.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Prompt,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Prompt {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Prompt {
    fn chars(&self) -> usize {
        match self {
            Prompt::None => 0,
            Prompt::One(s) => s.chars().count(),
            Prompt::Many(v) => v.iter().map(|s| s.chars().count()).sum(),
        }
    }
}

/// Tokens approximated as characters / 4, rounded up.
fn approx_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

/// How long a request takes at these rates; a rate of 0 (or less) costs nothing.
fn service_time(prompt_tokens: u64, max_tokens: u64, prefill: f64, decode: f64) -> Duration {
    let part = |tokens: u64, rate: f64| {
        if rate > 0.0 && rate.is_finite() {
            tokens as f64 / rate
        } else {
            0.0
        }
    };
    Duration::from_secs_f64(part(prompt_tokens, prefill) + part(max_tokens, decode))
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"message": message, "type": kind}}).to_string(),
    )
        .into_response()
}

async fn readiness(State(inst): State<Arc<Instance>>) -> Response {
    if inst.ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "booting").into_response()
    }
}

async fn stats(State(inst): State<Arc<Instance>>) -> Response {
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    axum::Json(json!({
        "id": inst.args.id,
        "ready": inst.ready(),
        "slots": inst.args.slots,
        "received": n(&inst.received),
        "served": n(&inst.served),
        "rejected": n(&inst.rejected),
        "failed": n(&inst.failed),
        "hung": n(&inst.hung),
        "in_flight": n(&inst.in_flight),
        "max_in_flight": n(&inst.max_in_flight),
    }))
    .into_response()
}

async fn models(State(inst): State<Arc<Instance>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "scale0-stand-in", "object": "model", "owned_by": inst.args.id}],
    }))
    .into_response()
}

/// Counts a request in flight for as long as it lives, even if the client goes away.
struct InFlight<'a>(&'a Instance);

impl<'a> InFlight<'a> {
    fn new(inst: &'a Instance) -> Self {
        let now = inst.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inst.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(inst)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn complete(State(inst): State<Arc<Instance>>, body: Bytes) -> Response {
    let n = inst.received.fetch_add(1, Ordering::SeqCst);
    if inst.args.crash_after.is_some_and(|limit| n >= limit) {
        eprintln!(
            "scale0-instance {}: crashing after {n} requests",
            inst.args.id
        );
        std::process::exit(3);
    }
    if !inst.ready() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the model is still loading",
        );
    }
    let request: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("invalid JSON body: {e}"),
            );
        }
    };
    if request.stream {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "stream is not supported by the stand-in server",
        );
    }

    let _permit = match inst.args.when_full {
        WhenFull::Reject => match inst.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                inst.rejected.fetch_add(1, Ordering::Relaxed);
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "all slots are busy",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        },
        WhenFull::Queue => match inst.slots.acquire().await {
            Ok(p) => p,
            Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "closed"),
        },
    };
    let _in_flight = InFlight::new(&inst);

    let prompt_tokens = approx_tokens(request.prompt.chars());
    let max_tokens = u64::from(request.max_tokens.unwrap_or(inst.args.default_max_tokens));
    let took = service_time(
        prompt_tokens,
        max_tokens,
        inst.args.prefill_tokens_per_sec,
        inst.args.decode_tokens_per_sec,
    );
    // A zero sleep would still wait for the timer wheel's next millisecond tick.
    if !took.is_zero() {
        tokio::time::sleep(took).await;
    }

    let dice = inst.roll();
    if dice < inst.args.hang_rate {
        inst.hung.fetch_add(1, Ordering::Relaxed);
        std::future::pending::<()>().await;
    }
    if dice < inst.args.hang_rate + inst.args.fail_rate {
        inst.failed.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "injected failure",
        );
    }

    inst.served.fetch_add(1, Ordering::Relaxed);
    let text: String = " ok".repeat(max_tokens.min(4096) as usize);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    axum::Json(json!({
        "id": format!("cmpl-{}-{n}", inst.args.id),
        "object": "text_completion",
        "created": created,
        "model": request.model.unwrap_or_else(|| "scale0-stand-in".into()),
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "length"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": max_tokens,
            "total_tokens": prompt_tokens + max_tokens,
        },
    }))
    .into_response()
}

fn check(args: &Args) -> Result<(), String> {
    for (name, rate) in [
        ("--fail-rate", args.fail_rate),
        ("--hang-rate", args.hang_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{name} {rate} must be in [0, 1]"));
        }
    }
    if args.fail_rate + args.hang_rate > 1.0 {
        return Err("--fail-rate plus --hang-rate must not exceed 1".into());
    }
    if args.slots == 0 {
        return Err("--slots must be at least 1".into());
    }
    for (name, path) in [
        ("--readiness-path", &args.readiness_path),
        ("--inference-path", &args.inference_path),
    ] {
        if !path.starts_with('/') || path == "/stats" {
            return Err(format!(
                "{name} `{path}` must start with '/' and not be /stats"
            ));
        }
    }
    if args.readiness_path == args.inference_path {
        return Err("--readiness-path and --inference-path must differ".into());
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Err(e) = check(&args) {
        eprintln!("scale0-instance: {e}");
        std::process::exit(2);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let inst = Arc::new(Instance {
        slots: Semaphore::new(args.slots as usize),
        started: Instant::now(),
        rng: AtomicU64::new(seed),
        received: AtomicU64::new(0),
        served: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        hung: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        max_in_flight: AtomicU64::new(0),
        args: args.clone(),
    });
    let app = Router::new()
        .route(&args.readiness_path, get(readiness))
        .route(&args.inference_path, post(complete))
        .route("/stats", get(stats))
        .route("/v1/models", get(models))
        .with_state(inst);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    eprintln!(
        "scale0-instance {}: listening on http://{addr}, ready in {}",
        args.id,
        HumanDuration::from(args.boot_time())
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Small responses go out at once rather than waiting on Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(());
    });
    tokio::select! {
        r = server => r?,
        _ = async {
            let _ = stop_rx.await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        } => eprintln!("scale0-instance {}: requests still in flight after 10 s; exiting", args.id),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_latency() {
        assert_eq!(approx_tokens(0), 0);
        assert_eq!(approx_tokens(1), 1);
        assert_eq!(approx_tokens(8), 2);
        assert_eq!(approx_tokens(9), 3);
        // 400 prompt tokens at 2000/s + 16 at 100/s = 0.2 + 0.16 s.
        let t = service_time(400, 16, 2000.0, 100.0);
        assert!((t.as_secs_f64() - 0.36).abs() < 1e-9, "{t:?}");
        assert_eq!(service_time(400, 16, 0.0, 0.0), Duration::ZERO);
    }

    #[test]
    fn prompts_of_either_shape() {
        let one: CompletionRequest = serde_json::from_str(r#"{"prompt":"abcd efgh"}"#).unwrap();
        assert_eq!(one.prompt.chars(), 9);
        let many: CompletionRequest =
            serde_json::from_str(r#"{"prompt":["ab","cd"],"max_tokens":3}"#).unwrap();
        assert_eq!(many.prompt.chars(), 4);
        assert_eq!(many.max_tokens, Some(3));
        let none: CompletionRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(none.prompt.chars(), 0);
    }

    #[test]
    fn bad_flags_are_refused() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["scale0-instance"];
            argv.extend_from_slice(extra);
            check(&Args::parse_from(argv))
        };
        assert!(parse(&[]).is_ok());
        assert!(parse(&["--fail-rate", "1.5"]).is_err());
        assert!(parse(&["--fail-rate", "0.6", "--hang-rate", "0.6"]).is_err());
        assert!(parse(&["--slots", "0"]).is_err());
        assert!(parse(&["--readiness-path", "health"]).is_err());
        assert!(parse(&["--readiness-path", "/v2/health/ready"]).is_ok());
    }
}
