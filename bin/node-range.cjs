// The Node.js versions Kuvert supports are stated once, in package.json's "engines.node"; this
// checks the running Node against them. Plain old JavaScript, so that it runs on the old Node it
// turns away.
//   node bin/node-range.cjs            exit 0 if this Node is supported, else 1 with a sentence
//   node bin/node-range.cjs --range    print the range
//   node bin/node-range.cjs --install  print the npm spec of the lowest supported line (node@">=22.18 <23")
"use strict";
var path = require("path");
var fs = require("fs");

function range() {
  var pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "package.json"), "utf8"));
  return pkg.engines.node;
}

function parts(version) {
  var p = String(version).replace(/^v/, "").split(".").map(Number);
  return [p[0] || 0, p[1] || 0, p[2] || 0];
}

function compare(a, b) {
  for (var i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

function satisfiesComparator(version, comparator) {
  var m = /^(>=|<=|>|<|=)?\s*(\d+(?:\.\d+){0,2})$/.exec(comparator);
  if (!m) throw new Error("package.json engines.node: cannot read the comparator " + comparator);
  var c = compare(parts(version), parts(m[2]));
  switch (m[1] || "=") {
    case ">=": return c >= 0;
    case "<=": return c <= 0;
    case ">": return c > 0;
    case "<": return c < 0;
    default: return c === 0;
  }
}

/** Whether a version satisfies a range of the form ">=22.18 <23 || >=24". */
function satisfies(version, r) {
  return r.split("||").some(function (alternative) {
    return alternative.trim().split(/\s+/).every(function (comparator) {
      return satisfiesComparator(version, comparator);
    });
  });
}

module.exports = { range: range, satisfies: satisfies };

if (require.main === module) {
  var r = range();
  var arg = process.argv[2];
  if (arg === "--range") {
    process.stdout.write(r + "\n");
  } else if (arg === "--install") {
    process.stdout.write("node@" + r.split("||")[0].trim() + "\n");
  } else if (!satisfies(process.versions.node, r)) {
    process.stderr.write(
      "Kuvert needs Node.js " + r + " (package.json engines), but " + process.execPath + " is " + process.versions.node + ". " +
        "Run scripts/setup.sh, which installs a supported Node and prints the PATH line to use.\n"
    );
    process.exit(1);
  }
}
