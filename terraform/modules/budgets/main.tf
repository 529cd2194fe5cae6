# AWS Budgets mirroring scale0's daily and monthly budgets, each notifying an SNS topic
# that the budget function subscribes to. scale0 enforces its budgets from its own
# ledger before every launch; AWS Budgets refreshes actual cost only a few times a day,
# so its notifications are a second opinion the function records (and an ACTUAL amount
# tightens the matching monthly budget). AWS periods begin at midnight UTC, whatever a
# budget's time_zone says. The AWS name is `scale0-<name>`, which the function matches.

data "aws_caller_identity" "current" {}

resource "aws_sns_topic" "budgets" {
  name              = "scale0-budgets"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "BudgetsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.budgets.arn]
    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "budgets" {
  arn    = aws_sns_topic.budgets.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "function" {
  topic_arn = aws_sns_topic.budgets.arn
  protocol  = "lambda"
  endpoint  = var.function_arn
}

resource "aws_lambda_permission" "sns" {
  statement_id  = "scale0-budgets-topic"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.budgets.arn
}

resource "aws_budgets_budget" "this" {
  for_each = var.budgets

  name         = "scale0-${each.key}"
  budget_type  = "COST"
  limit_amount = format("%.2f", each.value.limit_usd)
  limit_unit   = "USD"
  time_unit    = each.value.time_unit

  dynamic "cost_filter" {
    for_each = each.value.deployments == null ? [] : [each.value.deployments]
    content {
      name   = "TagKeyValue"
      values = [for d in cost_filter.value : "user:${var.tag_key}$${d}"]
    }
  }

  dynamic "notification" {
    for_each = toset(each.value.alert_thresholds)
    content {
      comparison_operator       = "GREATER_THAN"
      threshold                 = notification.value * 100
      threshold_type            = "PERCENTAGE"
      notification_type         = "ACTUAL"
      subscriber_sns_topic_arns = [aws_sns_topic.budgets.arn]
    }
  }

  tags = var.tags

  depends_on = [aws_sns_topic_policy.budgets]
}
