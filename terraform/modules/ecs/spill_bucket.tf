# The spill bucket: transactions larger than a job's memory budget are staged here until
# they commit and load. Private, encrypted, TLS only, stale objects expire.

resource "aws_s3_bucket" "spill" {
  #checkov:skip=CKV_AWS_21:Spill objects are transient (deleted once their transaction is loaded); versioning would keep every deleted staging object.
  #checkov:skip=CKV_AWS_144:Spill objects are transient; a copy in another region would never be read (a worker re-reads the WAL instead).
  #checkov:skip=CKV2_AWS_62:Nothing consumes events about spill objects; only the workers read them.
  #checkov:skip=CKV_AWS_18:Access logging is optional (spill_access_log_bucket) and off by default: it would log every staging write of the workers.
  bucket        = local.spill_bucket
  force_destroy = var.spill_force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "spill" {
  bucket = aws_s3_bucket.spill.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "spill" {
  bucket                  = aws_s3_bucket.spill.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "spill" {
  bucket = aws_s3_bucket.spill.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.spill_kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "spill" {
  bucket = aws_s3_bucket.spill.id

  rule {
    id     = "expire-stale-spill"
    status = "Enabled"
    filter {
      prefix = "${var.spill_prefix}/"
    }
    expiration {
      days = var.spill_expiration_days
    }
  }

  # The bucket holds spill objects only: multipart uploads a crashed worker left behind
  # are removed everywhere in it.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_logging" "spill" {
  count = var.spill_access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.spill.id
  target_bucket = var.spill_access_log_bucket
  target_prefix = "${local.spill_bucket}/"
}

data "aws_iam_policy_document" "spill_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.spill.arn, "${aws_s3_bucket.spill.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "spill" {
  bucket = aws_s3_bucket.spill.id
  policy = data.aws_iam_policy_document.spill_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.spill]
}
