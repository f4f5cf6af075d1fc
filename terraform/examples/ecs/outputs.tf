output "service_name" {
  description = "ECS service of the workers."
  value       = module.dbmazz.service_name
}

output "secret_arns" {
  description = "Secrets to fill with `aws secretsmanager put-secret-value` before the workers can start."
  value       = { for k, s in aws_secretsmanager_secret.dbmazz : k => s.arn }
}

output "spill_bucket" {
  description = "Bucket of the spill objects."
  value       = module.dbmazz.spill_bucket
}

output "log_group_name" {
  description = "CloudWatch log group of the workers."
  value       = module.dbmazz.log_group_name
}

output "security_group_id" {
  description = "Allow this security group into PostgreSQL and StarRocks."
  value       = module.dbmazz.security_group_id
}
