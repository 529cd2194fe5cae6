output "group_name" {
  description = "Name of the schedule group."
  value       = aws_scheduler_schedule_group.this.name
}

output "schedule_arns" {
  description = "ARN of every schedule, keyed `<deployment>/<action>`."
  value       = { for k, s in aws_scheduler_schedule.this : k => s.arn }
}

output "role_arn" {
  description = "ARN of the role the Scheduler invokes the function with."
  value       = aws_iam_role.scheduler.arn
}
