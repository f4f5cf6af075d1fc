output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.dbmazz.name
}

output "service_id" {
  description = "ARN of the ECS service."
  value       = aws_ecs_service.dbmazz.id
}

output "task_definition_arn" {
  description = "ARN of the task definition revision the service runs."
  value       = aws_ecs_task_definition.dbmazz.arn
}

output "security_group_id" {
  description = "Security group of the workers; allow it into PostgreSQL, StarRocks and Redis."
  value       = aws_security_group.dbmazz.id
}

output "log_group_name" {
  description = "CloudWatch log group of the workers (JSON lines)."
  value       = aws_cloudwatch_log_group.dbmazz.name
}

output "spill_bucket" {
  description = "Name of the spill bucket."
  value       = aws_s3_bucket.spill.bucket
}

output "spill_url" {
  description = "DBMAZZ_SPILL_URL the workers use."
  value       = local.environment["DBMAZZ_SPILL_URL"]
}

output "task_role_arn" {
  description = "IAM role of the dbmazz process (spill prefix only)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "IAM role of the ECS agent (image, logs, secrets)."
  value       = aws_iam_role.execution.arn
}
