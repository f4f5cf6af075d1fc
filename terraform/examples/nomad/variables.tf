variable "nomad_address" {
  type        = string
  description = "Address of the Nomad API, e.g. https://nomad.service.consul:4646."
}

variable "image" {
  type        = string
  description = "dbmazz image in a registry the Nomad clients can pull from."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the workers may run in."
}

variable "sink_url" {
  type        = string
  description = "StarRocks FE HTTP address, e.g. http://starrocks-fe.service.consul:8030."
}

variable "otlp_endpoint" {
  type        = string
  default     = ""
  description = "OTLP/gRPC collector, e.g. http://otel-collector.service.consul:4317; empty exports nothing."
}
