#!/usr/bin/env node
// compare.cjs DIRECT_DIR GATEWAY_DIR [SCORED_LIST [KNOWN_GAPS]]
//
// Reads the checks.json files the conformance CLI wrote (`server -o DIR`: one folder
// `server-<scenario>-<timestamp>` per scenario, in DIR itself or under DIR/active,
// DIR/pending, DIR/extra) for the direct run and the run through the gateway, prints one
// line per scenario, and exits 1 when a scenario does worse through the gateway than
// directly. SCORED_LIST (a file, one scenario name a line: what `conformance list
// --server --requirements R` names) marks which scenarios the requirement set scores; the
// others are shown "(not scored)" and still compared. The summary line gives the
// scored counts: how many pass directly and how many through the gateway. KNOWN_GAPS (a
// file, one scenario name a line) lists regressions we know of and have not fixed yet:
// they are shown "known gap" and do not fail the run, but one that no longer regresses
// fails it too, so the list only shrinks (take the name out of tests/conformance/known-gaps.txt).
//
// A scenario's status: "fail" when a check is FAILURE (or it left no checks.json, e.g. the
// run was cut short), "warn" when a check is WARNING, else "pass" (INFO checks are
// informative). pass > warn > fail; the CLI's own baseline logic also counts a warning
// as not passing.
"use strict";

const fs = require("fs");
const path = require("path");

const [directDir, gatewayDir, scoredFile, knownFile] = process.argv.slice(2);
const known = new Set(
  knownFile
    ? fs
        .readFileSync(knownFile, "utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean)
    : [],
);
const scored = scoredFile
  ? new Set(
      fs
        .readFileSync(scoredFile, "utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean),
    )
  : null;
if (!directDir || !gatewayDir) {
  console.error("usage: compare.cjs DIRECT_DIR GATEWAY_DIR");
  process.exit(2);
}

// scenario -> {suite, checks}
function load(dir) {
  const found = new Map();
  for (const suite of ["", "active", "pending", "extra"]) {
    const base = path.join(dir, suite);
    if (!fs.existsSync(base)) continue;
    for (const entry of fs.readdirSync(base).sort()) {
      const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(entry);
      if (!m) continue;
      const file = path.join(base, entry, "checks.json");
      let checks = null;
      try {
        checks = JSON.parse(fs.readFileSync(file, "utf8"));
      } catch {
        checks = null;
      }
      const shownSuite = suite === "" ? "active" : suite;
      found.set(m[1], { suite: scored && !scored.has(m[1]) ? "not scored" : shownSuite, checks });
    }
  }
  return found;
}

const RANK = { pass: 2, warn: 1, fail: 0 };

function status(entry) {
  if (!entry || !Array.isArray(entry.checks)) {
    return { status: "fail", label: entry ? "fail (no checks.json)" : "fail (not run)", problems: [] };
  }
  const count = (s) => entry.checks.filter((c) => c.status === s).length;
  const ok = count("SUCCESS");
  const failed = count("FAILURE");
  const warned = count("WARNING");
  const problems = entry.checks
    .filter((c) => c.status === "FAILURE" || c.status === "WARNING")
    .map((c) => `${c.status === "FAILURE" ? "FAIL" : "WARN"} ${c.name}: ${c.errorMessage ?? c.description}`);
  const tally = `${ok}/${ok + failed}${warned ? `, ${warned} warn` : ""}`;
  if (failed > 0) return { status: "fail", label: `FAIL ${tally}`, problems };
  if (warned > 0) return { status: "warn", label: `warn ${tally}`, problems };
  return { status: "pass", label: `pass ${tally}`, problems };
}

const direct = load(directDir);
const gateway = load(gatewayDir);
const names = [...new Set([...direct.keys(), ...gateway.keys()])];
if (names.length === 0) {
  console.error("no results found: did the conformance CLI run? (see cli.log next to the results)");
  process.exit(2);
}

const rows = names.map((name) => {
  const d = status(direct.get(name));
  const g = status(gateway.get(name));
  const suite = (direct.get(name) ?? gateway.get(name)).suite;
  const worse = RANK[g.status] < RANK[d.status];
  return { name, suite, d, g, worse };
});

const shown = (r) => (r.suite === "active" ? r.name : `${r.name} (${r.suite})`);
const w1 = Math.max(8, ...rows.map((r) => shown(r).length));
const w2 = Math.max(6, ...rows.map((r) => r.d.label.length));
const w3 = Math.max(7, ...rows.map((r) => r.g.label.length));
const line = (a, b, c, d) => `${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c.padEnd(w3)}  ${d}`;
console.log(line("scenario", "direct", "gateway", ""));
console.log(line("-".repeat(w1), "-".repeat(w2), "-".repeat(w3), ""));
for (const r of rows) {
  const mark = r.worse
    ? known.has(r.name)
      ? "<-- known gap (tests/conformance/known-gaps.txt)"
      : "<-- REGRESSION through the gateway"
    : known.has(r.name)
      ? "<-- listed as a known gap but does not regress: take it out of known-gaps.txt"
      : "";
  console.log(line(shown(r), r.d.label, r.g.label, mark));
}

const regressions = rows.filter((r) => r.worse && !known.has(r.name));
const knownRegressing = rows.filter((r) => r.worse && known.has(r.name));
const staleKnown = [...known].filter((n) => !knownRegressing.some((r) => r.name === n));
const passedDirect = rows.filter((r) => r.d.status !== "fail").length;
const passedBoth = rows.filter((r) => r.d.status !== "fail" && r.g.status !== "fail").length;
console.log("");
console.log(
  `${rows.length} scenarios; direct: ${rows.filter((r) => r.d.status === "pass").length} pass, ` +
    `${rows.filter((r) => r.d.status === "warn").length} warn, ${rows.filter((r) => r.d.status === "fail").length} fail; ` +
    `gateway: ${rows.filter((r) => r.g.status === "pass").length} pass, ` +
    `${rows.filter((r) => r.g.status === "warn").length} warn, ${rows.filter((r) => r.g.status === "fail").length} fail; ` +
    `${passedBoth}/${passedDirect} of the scenarios that pass directly also pass through the gateway`,
);

if (scored) {
  const inSet = rows.filter((r) => scored.has(r.name));
  const missing = [...scored].filter((n) => !rows.some((r) => r.name === n));
  console.log(
    `scored (${scored.size}): direct ${inSet.filter((r) => r.d.status === "pass").length} pass, ` +
      `gateway ${inSet.filter((r) => r.g.status === "pass").length} pass` +
      (missing.length ? `; not run: ${missing.join(", ")}` : ""),
  );
}

const noted = rows.filter((r) => r.g.problems.length > 0 || r.d.problems.length > 0);
if (noted.length > 0) {
  console.log("");
  console.log("Failed and warning checks:");
  for (const r of noted) {
    for (const [side, s] of [
      ["direct", r.d],
      ["gateway", r.g],
    ]) {
      for (const p of s.problems) console.log(`  ${r.name} [${side}] ${p.replace(/\s+/g, " ").slice(0, 400)}`);
    }
  }
}

if (knownRegressing.length > 0) {
  console.log("");
  console.log(`known gaps, still worse through the gateway: ${knownRegressing.map((r) => r.name).join(", ")}`);
}
let failed = false;
if (regressions.length > 0) {
  console.log("");
  console.log(`REGRESSIONS (worse through the gateway than directly): ${regressions.map((r) => r.name).join(", ")}`);
  failed = true;
}
if (staleKnown.length > 0) {
  console.log("");
  console.log(`listed as known gaps but no longer worse through the gateway: ${staleKnown.join(", ")}`);
  failed = true;
}
if (failed) process.exit(1);
console.log("");
console.log(
  knownRegressing.length > 0
    ? "OK: no scenario does worse through the gateway than directly, besides the known gaps above"
    : "OK: no scenario does worse through the gateway than directly",
);
