variable "region" {
  type        = string
  description = "AWS region of the deployment."
}

variable "image" {
  type        = string
  description = "dbmazz image in a registry the tasks can pull from, e.g. an ECR repository."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the workers."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the workers."
}

variable "client_security_group_ids" {
  type        = list(string)
  default     = []
  description = "Security groups of operators' hosts and Prometheus, allowed to the gRPC and metrics ports."
}

variable "egress_cidr_blocks" {
  type        = list(string)
  description = "Networks of PostgreSQL, StarRocks, the OTLP collector and the AWS endpoints."
}

variable "sink_url" {
  type        = string
  description = "StarRocks FE HTTP address, e.g. http://starrocks-fe.internal:8030."
}

variable "otlp_endpoint" {
  type        = string
  default     = null
  description = "OTLP/gRPC collector, e.g. http://otel-collector.internal:4317; null exports nothing."
}
