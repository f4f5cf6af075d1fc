# Example: a fleet of dbmazz workers on Nomad (docker driver, Consul service provider)
# replicating two tables into StarRocks, with leases in Redis. The secrets live in the
# Nomad variable nomad/jobs/dbmazz, written outside Terraform (README.md).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    nomad = {
      source  = "hashicorp/nomad"
      version = ">= 2.0.0, < 3.0.0"
    }
  }
}

provider "nomad" {
  address = var.nomad_address
}

module "dbmazz" {
  source = "../../modules/nomad"

  image        = var.image
  datacenters  = var.datacenters
  worker_count = 3

  tables           = "public.orders,public.order_items"
  slot_name        = "orders"
  publication_name = "orders_pub"
  sink_url         = var.sink_url
  sink_database    = "analytics"
  sink_user        = "dbmazz"

  lease_backend        = "redis"
  shutdown_timeout_ms  = 20000
  kill_timeout_seconds = 30
  otlp_endpoint        = var.otlp_endpoint
}
