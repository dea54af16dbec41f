// The dashboard's test (ctest `dashboard_queries`): docker/grafana/token-broker.json must be a
// dashboard whose every panel (rows aside) has a title, a description and at least one query, with
// unique ids, on the 24-column grid; and every query must be PromQL that Prometheus parses: the
// queries, with Grafana's variables given values, become recording rules for `promtool check rules`.
// (That each metric they name exists is ops_test's part.)
//
//   node tests/ops/dashboard_queries.mjs DASHBOARD_JSON [PROMTOOL]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

const [file, promtool = 'promtool'] = process.argv.slice(2);
if (!file) {
  console.error('usage: dashboard_queries.mjs DASHBOARD_JSON [PROMTOOL]');
  process.exit(2);
}
const dash = JSON.parse(readFileSync(file, 'utf8'));
const problems = [];
const ids = new Set();
const rules = [];
for (const p of dash.panels ?? []) {
  if (ids.has(p.id)) problems.push(`panel id ${p.id} used twice`);
  ids.add(p.id);
  const g = p.gridPos ?? {};
  if (!(g.w > 0 && g.h > 0 && g.x >= 0 && g.x + g.w <= 24)) problems.push(`${p.title}: off the grid`);
  if (p.type === 'row') continue;
  if (!p.title) problems.push(`panel ${p.id}: no title`);
  if (!p.description) problems.push(`${p.title}: no description`);
  if (!(p.targets ?? []).length) problems.push(`${p.title}: no query`);
  for (const t of p.targets ?? []) {
    const expr = t.expr
      .replaceAll('$__rate_interval', '5m')
      .replaceAll('$job', '.*')
      .replaceAll('$instance', '.*');
    rules.push({ record: `dashboard:panel${p.id}:${t.refId}`, expr });
  }
}
if (rules.length < 20) problems.push(`only ${rules.length} queries found`);

const work = mkdtempSync(join(tmpdir(), 'token-broker-dashboard-'));
try {
  const out = join(work, 'queries.yaml');
  writeFileSync(out, stringify({ groups: [{ name: 'dashboard', rules }] }));
  const r = spawnSync(promtool, ['check', 'rules', out], { encoding: 'utf8' });
  if (r.error) problems.push(`${promtool}: ${r.error.message} (scripts/dev test installs the Debian package prometheus)`);
  else {
    process.stdout.write(r.stdout + r.stderr);
    if (r.status !== 0) problems.push('a query does not parse');
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (problems.length) {
  for (const p of problems) console.error(`FAIL: ${p}`);
  process.exit(1);
}
console.log(`dashboard: ${ids.size} panels, ${rules.length} queries parsed`);
