//! The scheduler Lambda function: EventBridge Scheduler invocations naming a
//! deployment and a scheduled action. See `scale0_functions::scheduler`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    scale0_functions::runtime::serve("scale0-scheduler", |event, deps| async move {
        scale0_functions::scheduler::handle_json(event, &deps).await
    })
    .await
}
