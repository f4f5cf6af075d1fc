output "job_id" {
  description = "Nomad job of the workers."
  value       = module.dbmazz.job_id
}

output "secrets_path" {
  description = "Nomad variable to fill with `nomad var put` before the workers can start."
  value       = module.dbmazz.secrets_path
}
