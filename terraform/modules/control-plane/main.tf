# The control plane: the four scale0 functions (provided.al2023, one zip each), their
# least-privilege roles, the events that trigger them, the configuration in SSM, log
# groups, and a dead-letter queue for every asynchronous invocation that fails.
#
#   EventBridge tick, alarm state changes ──▶ scaler ◀── scale0.control (Amazon MQ)
#   EventBridge Scheduler (module schedules) ──▶ scheduler
#   Auto Scaling lifecycle, EC2 state, Spot warnings ──▶ lifecycle
#   AWS Budgets via SNS (module budgets) ──▶ budget
#
# Every function reads the configuration once per cold start from the parameter; the
# parameter's hash is also in each function's environment, so a new configuration
# replaces the running environments instead of waiting for their next cold start.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  # What each function calls besides logs, its parameter and Redis/AMQP. The scheduler
  # and lifecycle functions run the scaler in-process for the deployment they woke, so
  # they drive the groups too.
  functions = {
    scaler = {
      description       = "scale0 scaler: ticks, alarms and control events -> decide -> Auto Scaling"
      zip               = var.lambda_zips.scaler
      autoscaling       = true
      lifecycle_actions = false
      broker            = true
    }
    scheduler = {
      description       = "scale0 scheduler: EventBridge Scheduler firings wake the scaler"
      zip               = var.lambda_zips.scheduler
      autoscaling       = true
      lifecycle_actions = false
      broker            = false
    }
    lifecycle = {
      description       = "scale0 lifecycle: Auto Scaling lifecycle actions, EC2 state changes, Spot warnings"
      zip               = var.lambda_zips.lifecycle
      autoscaling       = true
      lifecycle_actions = true
      broker            = false
    }
    budget = {
      description       = "scale0 budget: AWS Budgets notifications"
      zip               = var.lambda_zips.budget
      autoscaling       = false
      lifecycle_actions = false
      broker            = false
    }
  }

  kms_key_arn = var.kms_key_arn == null ? module.kms[0].key_arn : var.kms_key_arn
  # The parameter tiers: Standard holds 4 KB, Advanced 8 KB.
  config_tier = length(var.config_toml) > 4096 ? "Advanced" : "Standard"
}

# --- KMS ------------------------------------------------------------------------------

module "kms" {
  source = "../kms"
  count  = var.kms_key_arn == null ? 1 : 0

  name        = var.name_prefix
  description = "${var.name_prefix}: configuration, function environments, logs, budget notifications"
  tags        = var.tags
}

moved {
  from = aws_kms_key.this[0]
  to   = module.kms[0].aws_kms_key.this
}

moved {
  from = aws_kms_alias.this[0]
  to   = module.kms[0].aws_kms_alias.this
}

# --- Configuration --------------------------------------------------------------------

resource "aws_ssm_parameter" "config" {
  name        = var.config_parameter_name
  description = "scale0 configuration (TOML), read by the functions and the queue worker"
  type        = "SecureString"
  tier        = local.config_tier
  key_id      = local.kms_key_arn
  value       = var.config_toml
  tags        = var.tags
}

# --- Logs and dead letters ------------------------------------------------------------

resource "aws_cloudwatch_log_group" "function" {
  # checkov:skip=CKV_AWS_338:Retention is the deployer's input (log_retention_days, default 30): these are operational logs, the decisions they explain are also kept in Redis, and a year of them is a cost the deployer chooses.
  for_each = local.functions

  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = var.tags
}

resource "aws_sqs_queue" "dead_letters" {
  name                      = "${var.name_prefix}-dead-letters"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

data "aws_iam_policy_document" "dead_letters" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for r in aws_cloudwatch_event_rule.this : r.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  policy    = data.aws_iam_policy_document.dead_letters.json
}

# --- Roles ----------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name_prefix        = "${var.name_prefix}-${each.key}-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  statement {
    sid       = "ReadTheConfiguration"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.config.arn]
  }

  statement {
    sid       = "DecryptConfigurationAndEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]
  }

  statement {
    sid       = "FailedInvocationsToTheDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  # Lambda attaches the function to the VPC with network interfaces in its subnets.
  statement {
    sid     = "VpcNetworkInterfaces"
    actions = ["ec2:CreateNetworkInterface"]
    resources = concat(
      ["arn:${local.partition}:ec2:${local.region}:${local.account}:network-interface/*"],
      [for s in var.subnet_ids : "arn:${local.partition}:ec2:${local.region}:${local.account}:subnet/${s}"],
      [for g in var.security_group_ids : "arn:${local.partition}:ec2:${local.region}:${local.account}:security-group/${g}"],
    )
  }

  statement {
    sid       = "VpcNetworkInterfaceUpkeep"
    actions   = ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account}:network-interface/*"]
  }

  # Describe calls and X-Ray have no resource-level permissions: `*` is the only form.
  statement {
    sid = "UnscopableDescribesAndTraces"
    actions = concat(
      ["ec2:DescribeNetworkInterfaces", "xray:PutTraceSegments", "xray:PutTelemetryRecords"],
      each.value.autoscaling ? ["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances"] : [],
      each.value.broker ? ["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"] : [],
    )
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = each.value.autoscaling && length(var.asg_arns) > 0 ? [1] : []
    content {
      sid = "DriveThePoolsGroups"
      actions = concat(
        ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
        each.value.lifecycle_actions ? ["autoscaling:CompleteLifecycleAction"] : [],
      )
      resources = var.asg_arns
    }
  }

  dynamic "statement" {
    for_each = each.value.broker ? [1] : []
    content {
      sid       = "AmazonMqEventSource"
      actions   = ["mq:DescribeBroker"]
      resources = [var.broker_arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.broker ? [1] : []
    content {
      sid       = "AmazonMqCredentials"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.broker_credentials_secret_arn]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "scale0"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

# --- Functions ------------------------------------------------------------------------

resource "aws_lambda_function" "this" {
  for_each = local.functions
  # checkov:skip=CKV_AWS_272:The zips are built from this repository by `make lambda-zips`; code signing needs an AWS Signer profile the deployer owns, which this module cannot assume.

  function_name                  = "${var.name_prefix}-${each.key}"
  description                    = each.value.description
  role                           = aws_iam_role.function[each.key].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = each.value.zip
  source_code_hash               = filebase64sha256(each.value.zip)
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = local.kms_key_arn

  environment {
    variables = {
      SCALE0_CONFIG_SSM_PARAMETER = aws_ssm_parameter.config.name
      SCALE0_CONFIG_SHA256        = sha256(var.config_toml)
      SCALE0_REDIS_URL            = var.redis_url
      SCALE0_AMQP_URL             = var.amqp_url
      RUST_LOG                    = var.log_level
    }
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letters.arn
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.function]
}

resource "aws_lambda_function_event_invoke_config" "this" {
  for_each = local.functions

  function_name                = aws_lambda_function.this[each.key].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dead_letters.arn
    }
  }
}

# --- Triggers -------------------------------------------------------------------------

locals {
  rules = {
    tick = {
      description = "scale0 tick: probes, reconcile and a decision per deployment"
      function    = "scaler"
      schedule    = var.tick_schedule_expression
      pattern     = null
    }
    alarms = {
      description = "scale0: alarm state changes of scale0-<deployment>-... alarms wake the scaler"
      function    = "scaler"
      schedule    = null
      pattern = jsonencode({
        source        = ["aws.cloudwatch"]
        "detail-type" = ["CloudWatch Alarm State Change"]
        detail        = { alarmName = [for d in var.deployment_names : { prefix = "scale0-${d}-" }] }
      })
    }
    autoscaling = {
      description = "scale0: lifecycle actions and launch/terminate results of the pools' groups"
      function    = "lifecycle"
      schedule    = null
      pattern = jsonencode({
        source = ["aws.autoscaling"]
        "detail-type" = [
          "EC2 Instance-launch Lifecycle Action",
          "EC2 Instance-terminate Lifecycle Action",
          "EC2 Instance Launch Successful",
          "EC2 Instance Launch Unsuccessful",
          "EC2 Instance Terminate Successful",
          "EC2 Instance Terminate Unsuccessful",
        ]
        detail = { AutoScalingGroupName = var.asg_names }
      })
    }
    ec2 = {
      description = "scale0: EC2 state changes, Spot interruption warnings and rebalance recommendations"
      function    = "lifecycle"
      schedule    = null
      pattern = jsonencode({
        source = ["aws.ec2"]
        "detail-type" = [
          "EC2 Instance State-change Notification",
          "EC2 Spot Instance Interruption Warning",
          "EC2 Instance Rebalance Recommendation",
        ]
      })
    }
  }
}

resource "aws_cloudwatch_event_rule" "this" {
  for_each = local.rules

  name                = "${var.name_prefix}-${each.key}"
  description         = each.value.description
  schedule_expression = each.value.schedule
  event_pattern       = each.value.pattern
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = local.rules

  rule = aws_cloudwatch_event_rule.this[each.key].name
  arn  = aws_lambda_function.this[each.value.function].arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 3
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letters.arn
  }
}

resource "aws_lambda_permission" "events" {
  for_each = local.rules

  statement_id  = "eventbridge-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value.function].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.this[each.key].arn
}

# Control events from the queue worker (`scale0.control`) through the Amazon MQ event
# source: batches of base64 bodies, acknowledged when the scaler returns.
resource "aws_lambda_event_source_mapping" "control" {
  event_source_arn = var.broker_arn
  function_name    = aws_lambda_function.this["scaler"].arn
  queues           = ["scale0.control"]
  batch_size       = var.control_batch_size

  source_access_configuration {
    type = "BASIC_AUTH"
    uri  = var.broker_credentials_secret_arn
  }

  source_access_configuration {
    type = "VIRTUAL_HOST"
    uri  = var.broker_virtual_host
  }

  depends_on = [aws_iam_role_policy.function]
}
