# The queue worker as an ECS Fargate service next to the broker: long-running, so it
# can hold requests through cold starts. The task reads the configuration from the SSM
# parameter (injected as a secret and written to a file, since the worker takes a
# path) and the two URLs from SecureString parameters; its container health check is
# GET /health, which answers 200 only while the worker is connected to the broker and
# Redis and not draining.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

resource "aws_ssm_parameter" "amqp_url" {
  name   = "/${var.name}/amqp-url"
  type   = "SecureString"
  key_id = var.kms_key_arn
  value  = var.amqp_url
  tags   = var.tags
}

resource "aws_ssm_parameter" "redis_url" {
  name   = "/${var.name}/redis-url"
  type   = "SecureString"
  key_id = var.kms_key_arn
  value  = var.redis_url
  tags   = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  # checkov:skip=CKV_AWS_338:Retention is the deployer's input (log_retention_days, default 30): operational logs of the queue worker, and a year of them is a cost the deployer chooses.
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# The execution role starts the task: it reads the parameters and writes the logs.
resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-execution-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "Parameters"
    actions   = ["ssm:GetParameters"]
    resources = [var.config_parameter_arn, aws_ssm_parameter.amqp_url.arn, aws_ssm_parameter.redis_url.arn]
  }

  statement {
    sid       = "DecryptParameters"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  # Pulls from ECR: the token call has no resource-level permission; the layer calls
  # are scoped to this account's repositories.
  statement {
    sid       = "EcrToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["arn:${data.aws_partition.current.partition}:ecr:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:repository/*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "scale0-worker-start"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The worker itself calls no AWS API: its task role has no policy.
resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory_mb
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([{
    name                   = "queue-worker"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = false
    entryPoint             = ["/bin/sh", "-c"]
    command = [
      "printf '%s' \"$SCALE0_CONFIG_TEXT\" > /tmp/scale0.toml && exec scale0-queue-worker --config /tmp/scale0.toml --drain-timeout ${var.drain_timeout_seconds}s",
    ]
    stopTimeout  = var.drain_timeout_seconds + 10
    portMappings = [{ containerPort = var.metrics_port, protocol = "tcp" }]
    environment = [
      { name = "SCALE0_METRICS_ADDR", value = "0.0.0.0:${var.metrics_port}" },
      { name = "SCALE0_CONFIG_SHA256", value = var.config_sha256 },
    ]
    secrets = [
      { name = "SCALE0_CONFIG_TEXT", valueFrom = var.config_parameter_arn },
      { name = "SCALE0_AMQP_URL", valueFrom = aws_ssm_parameter.amqp_url.arn },
      { name = "SCALE0_REDIS_URL", valueFrom = aws_ssm_parameter.redis_url.arn },
    ]
    healthCheck = {
      command     = ["CMD-SHELL", "curl -fsS http://127.0.0.1:${var.metrics_port}/health || exit 1"]
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "worker"
      }
    }
  }])

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name            = var.name
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.this.arn
  desired_count   = var.desired_count
  launch_type     = "FARGATE"

  # Replace tasks one at a time: a stopping worker requeues what it holds for the others.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }

  tags = var.tags
}
