//! The scaler Lambda function: EventBridge ticks, CloudWatch alarm state changes and
//! `scale0.control` events (Amazon MQ event source). See `scale0_functions::scaler`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    scale0_functions::runtime::serve("scale0-scaler", |event, deps| async move {
        scale0_functions::scaler::handle_json(event, &deps).await
    })
    .await
}
