// Parses HCL files (Terraform .tf, Nomad .hcl) with HashiCorp's HCL parser, through
// @cdktf/hcl2json (the parser compiled to WebAssembly), and prints one JSON object
// mapping each file name to its parsed body. Exits 1 naming every file that does not
// parse, with the parser's line and column.
//
//   node infra/lint/hcl2json.js [--cache DIR] FILE...
//
// --cache DIR keeps each successful result in DIR under a hash of the parser's version
// and the file's content, so an unchanged file is parsed once (loading the parser costs
// about 1.5 s of CPU; `make deploy-lint` fills the cache that tests/deploy.rs then reads).
// Failures are never cached.
//
// The package is installed by infra/install-deps.sh into target/tools/hcl2json;
// HCL2JSON_MODULE overrides where it is loaded from.

"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const modulePath =
  process.env.HCL2JSON_MODULE ||
  path.join(__dirname, "..", "..", "target", "tools", "hcl2json", "node_modules", "@cdktf", "hcl2json");

function packageVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(modulePath, "package.json"), "utf8")).version;
  } catch (e) {
    return null;
  }
}

// Loaded on first use: requiring the package compiles the WebAssembly parser.
let parser = null;
function loadParser() {
  if (parser === null) {
    try {
      parser = require(modulePath).parse;
    } catch (e) {
      process.stderr.write(
        `hcl2json: cannot load @cdktf/hcl2json from ${modulePath} (${e.code || e.message}); ` +
          "run infra/install-deps.sh (or `make deps`)\n",
      );
      process.exit(2);
    }
  }
  return parser;
}

async function main(argv) {
  let cacheDir = null;
  if (argv[0] === "--cache" && argv.length >= 2) {
    cacheDir = argv[1];
    argv = argv.slice(2);
  }
  if (argv.length === 0 || argv[0] === "--cache") {
    process.stderr.write("usage: node infra/lint/hcl2json.js [--cache DIR] FILE...\n");
    return 2;
  }
  const version = packageVersion();
  if (version === null) {
    loadParser(); // reports the missing package and exits
  }
  if (cacheDir !== null) {
    fs.mkdirSync(cacheDir, { recursive: true });
  }
  const parsed = {};
  let failed = 0;
  for (const file of argv) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      process.stderr.write(`${file}: cannot be read: ${e.message}\n`);
      failed += 1;
      continue;
    }
    const key = crypto.createHash("sha256").update(`${version}\0${text}`).digest("hex");
    const cached = cacheDir === null ? null : path.join(cacheDir, `${key}.json`);
    if (cached !== null && fs.existsSync(cached)) {
      parsed[file] = JSON.parse(fs.readFileSync(cached, "utf8"));
      continue;
    }
    try {
      parsed[file] = await loadParser()(file, text);
    } catch (e) {
      process.stderr.write(`${file}: does not parse: ${String(e.message || e).trim()}\n`);
      failed += 1;
      continue;
    }
    if (cached !== null) {
      // Written aside and renamed: concurrent readers never see half a file.
      const tmp = `${cached}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(parsed[file]));
      fs.renameSync(tmp, cached);
    }
  }
  if (failed > 0) {
    process.stderr.write(`hcl2json: ${failed} of ${argv.length} file(s) do not parse\n`);
    return 1;
  }
  process.stdout.write(JSON.stringify(parsed));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`hcl2json: ${e.stack || e}\n`);
    process.exit(2);
  },
);
