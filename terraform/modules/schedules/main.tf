# One EventBridge Scheduler schedule per scheduled action of the configuration. The
# input is what the scheduler function reads (functions/src/events.rs,
# ScheduleInvocation): the deployment, the action, and the Scheduler's own execution id
# (for event dedupe) and scheduled time. The limits themselves are not in the input:
# the scaler computes them from the configuration and the clock.

data "aws_caller_identity" "current" {}

resource "aws_scheduler_schedule_group" "this" {
  name = var.group_name
  tags = var.tags
}

resource "aws_scheduler_schedule" "this" {
  for_each = var.schedules

  name                         = each.value.name
  group_name                   = aws_scheduler_schedule_group.this.name
  schedule_expression          = each.value.expression
  schedule_expression_timezone = each.value.time_zone
  start_date                   = each.value.start
  end_date                     = each.value.end
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.function_arn
    role_arn = aws_iam_role.scheduler.arn
    input = jsonencode({
      deployment     = each.value.deployment
      action         = each.value.action
      execution_id   = "<aws.scheduler.execution-id>"
      scheduled_time = "<aws.scheduler.scheduled-time>"
    })

    retry_policy {
      maximum_retry_attempts       = var.maximum_retry_attempts
      maximum_event_age_in_seconds = 3600
    }

    dead_letter_config {
      arn = var.dead_letter_queue_arn
    }
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name_prefix        = "scale0-scheduler-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "invoke" {
  statement {
    sid       = "InvokeTheSchedulerFunction"
    actions   = ["lambda:InvokeFunction"]
    resources = [var.function_arn, "${var.function_arn}:*"]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [var.dead_letter_queue_arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "EncryptedInput"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "invoke"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.invoke.json
}
