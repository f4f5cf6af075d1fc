#!/usr/bin/env bash
# Static checks of the deployment files, run by `make deploy-lint` (part of `make test`):
#
#   1. every .tf and .hcl file parses with HashiCorp's HCL parser (@cdktf/hcl2json);
#   2. checkov over terraform/: no failed check (deliberate skips are commented in the
#      code, `#checkov:skip=<id>:<reason>`);
#   3. hadolint on the Dockerfile: clean.
#
# No Terraform, Nomad or Docker binary can be installed on the build machines (they are
# not in the package registries they reach), so `terraform validate`, `nomad job
# validate` and `docker compose config` do not run here; tests/deploy/ checks what they
# would (variables declared, used and documented, module calls against module variables,
# environment variables against dbmazz's configuration registry, commands against the
# CLI). The tools are pinned and installed into target/tools by infra/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

tools=target/tools
missing=()
[ -f "$tools/hcl2json/node_modules/@cdktf/hcl2json/package.json" ] || missing+=(hcl2json)
[ -x "$tools/checkov/bin/checkov" ] || missing+=(checkov)
[ -x "$tools/hadolint/bin/hadolint" ] || missing+=(hadolint)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "deploy-lint: ${missing[*]} not installed in $tools; run infra/install-deps.sh (or make deps)" >&2
    exit 2
fi

mapfile -t hcl_files < <(find . \( -path ./target -o -path ./.git -o -name .terraform \) -prune -o \
    -type f \( -name '*.tf' -o -name '*.hcl' \) -print | sed 's|^\./||' | sort)
if [ "${#hcl_files[@]}" -eq 0 ]; then
    echo "deploy-lint: no .tf or .hcl file found" >&2
    exit 1
fi
# The parse results are kept by content for tests/deploy/ (loading the parser is slow).
node infra/lint/hcl2json.js --cache target/deploy-lint/hcl-cache "${hcl_files[@]}" >/dev/null
echo "deploy-lint: ${#hcl_files[@]} .tf/.hcl files parse with the HCL parser"

# --skip-download: no policy download or platform call (the machines reach no such API).
"$tools/checkov/bin/checkov" --directory terraform --framework terraform --compact --quiet \
    --skip-download --output cli
echo "deploy-lint: checkov found no failed check in terraform/"

"$tools/hadolint/bin/hadolint" Dockerfile
echo "deploy-lint: hadolint found nothing in the Dockerfile"
