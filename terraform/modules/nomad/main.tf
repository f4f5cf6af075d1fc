# Submits the dbmazz jobspec (dbmazz.nomad.hcl beside this file, identical to
# infra/nomad/dbmazz.nomad.hcl) with this module's variables as the jobspec's HCL2
# variables. The provider passes variables as strings; lists go as HCL literals.

locals {
  jobspec_vars = {
    image               = var.image
    datacenters         = jsonencode(var.datacenters)
    namespace           = var.namespace
    worker_count        = tostring(var.worker_count)
    cpu                 = tostring(var.cpu)
    memory              = tostring(var.memory)
    tables              = var.tables
    sink_url            = var.sink_url
    sink_database       = var.sink_database
    sink_user           = var.sink_user
    slot_name           = var.slot_name
    publication_name    = var.publication_name
    lease_backend       = var.lease_backend
    lease_ttl_ms        = tostring(var.lease_ttl_ms)
    shutdown_timeout_ms = tostring(var.shutdown_timeout_ms)
    kill_timeout        = "${var.kill_timeout_seconds}s"
    otlp_endpoint       = var.otlp_endpoint
    secrets_path        = var.secrets_path
  }
}

resource "nomad_job" "dbmazz" {
  jobspec = file("${path.module}/dbmazz.nomad.hcl")

  hcl2 {
    vars = local.jobspec_vars
  }

  # Wait for the deployment (health checks passing) so a broken rollout fails the apply.
  detach = !var.wait_for_deployment

  purge_on_destroy = var.purge_on_destroy

  lifecycle {
    precondition {
      condition     = var.kill_timeout_seconds * 1000 > var.shutdown_timeout_ms
      error_message = "kill_timeout_seconds must be above the drain deadline (shutdown_timeout_ms), or Nomad kills workers in the middle of their drain."
    }
    precondition {
      condition     = var.lease_backend != "none" || var.worker_count == 1
      error_message = "Several workers need leases: set lease_backend to postgres or redis."
    }
  }
}
