output "scaler_alarm_names" {
  description = "Alarms whose state changes wake the scaler, keyed by deployment."
  value       = { for k, a in aws_cloudwatch_metric_alarm.queue_depth : k => a.alarm_name }
}

output "operator_alarm_names" {
  description = "Alarms for operators."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.no_consumer : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.worker_cpu : a.alarm_name],
    [aws_cloudwatch_metric_alarm.dead_letters.alarm_name],
  )
}
