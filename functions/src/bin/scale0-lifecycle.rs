//! The lifecycle Lambda function: EC2 Auto Scaling lifecycle actions and results, and
//! EC2 instance state-change notifications. See `scale0_functions::lifecycle`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    scale0_functions::runtime::serve("scale0-lifecycle", |event, deps| async move {
        scale0_functions::lifecycle::handle_json(event, &deps).await
    })
    .await
}
