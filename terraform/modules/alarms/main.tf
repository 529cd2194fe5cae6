# CloudWatch alarms. Those named `scale0-<deployment>-...` wake the scaler: the
# control-plane's EventBridge rule routes their state changes to it, and the scaler
# attributes an alarm to its deployment by that name. The queue-depth alarm counts the
# deployment's queue on Amazon MQ (ready and unacked, so requests a worker holds count)
# and fires as soon as anything waits, which wakes a deployment at zero even when no
# worker is there to send an activation.
#
# The others (no consumer on a request queue, worker CPU, failed invocations) are for
# operators, named `scale0.ops-...` so the scaler's rule never sees them.

resource "aws_cloudwatch_metric_alarm" "queue_depth" {
  for_each = toset(var.deployment_names)

  alarm_name          = "scale0-${each.key}-queue-depth"
  alarm_description   = "Requests wait in scale0.${each.key}: wakes the scaler"
  namespace           = "AWS/AmazonMQ"
  metric_name         = "MessageCount"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.queue_depth_threshold
  treat_missing_data  = "notBreaching"
  dimensions = {
    Broker      = var.broker_name
    VirtualHost = var.virtual_host
    Queue       = "scale0.${each.key}"
  }
}

resource "aws_cloudwatch_metric_alarm" "no_consumer" {
  for_each = toset(var.deployment_names)

  alarm_name          = "scale0.ops-${each.key}-no-consumer"
  alarm_description   = "No queue worker consumes scale0.${each.key}"
  namespace           = "AWS/AmazonMQ"
  metric_name         = "ConsumerCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = var.operator_topic_arns
  ok_actions          = var.operator_topic_arns
  dimensions = {
    Broker      = var.broker_name
    VirtualHost = var.virtual_host
    Queue       = "scale0.${each.key}"
  }
}

resource "aws_cloudwatch_metric_alarm" "worker_cpu" {
  count = var.worker_cluster_name == null ? 0 : 1

  alarm_name          = "scale0.ops-worker-cpu"
  alarm_description   = "The queue workers are busy: add tasks"
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.worker_cpu_threshold_percent
  alarm_actions       = var.operator_topic_arns
  ok_actions          = var.operator_topic_arns
  dimensions = {
    ClusterName = var.worker_cluster_name
    ServiceName = var.worker_service_name
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "scale0.ops-dead-letters"
  alarm_description   = "A function invocation or an event delivery failed after its retries"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.operator_topic_arns
  dimensions = {
    QueueName = var.dead_letter_queue_name
  }
}
