output "job_id" {
  description = "ID of the Nomad job."
  value       = nomad_job.dbmazz.id
}

output "namespace" {
  description = "Namespace the job runs in."
  value       = nomad_job.dbmazz.namespace
}

output "secrets_path" {
  description = "Nomad variable the workers read their secrets from (items source_url, sink_password, control_token, optional lease_url)."
  value       = var.secrets_path
}

output "service_name" {
  description = "Consul service of the workers' gRPC control plane (health, status, control)."
  value       = "dbmazz"
}
