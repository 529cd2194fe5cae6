//! The budget Lambda function: AWS Budgets notifications delivered through SNS. See
//! `scale0_functions::budget`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    scale0_functions::runtime::serve("scale0-budget", |event, deps| async move {
        scale0_functions::budget::handle_json(event, &deps).await
    })
    .await
}
