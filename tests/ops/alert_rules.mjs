// The alert rules' test (ctest `alert_rules`): docker/prometheus/alerts.yaml must pass
// `promtool check rules`; every rule must carry a severity, a summary, a description and a runbook;
// every rule must have a case in alerts_test.yaml where it fires and one where it does not; and
// `promtool test rules` must pass on alerts_test.yaml, with the rules' long texts left out (promtool
// compares every annotation, and copying the runbooks into the tests would only test the copy).
//
//   node tests/ops/alert_rules.mjs RULES_DIR [PROMTOOL]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';

const [dir, promtool = 'promtool'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: alert_rules.mjs RULES_DIR [PROMTOOL]');
  process.exit(2);
}
const problems = [];

function run(args) {
  const r = spawnSync(promtool, args, { encoding: 'utf8' });
  if (r.error) {
    problems.push(`${promtool}: ${r.error.message} (scripts/dev test installs the Debian package prometheus)`);
    return false;
  }
  process.stdout.write(r.stdout + r.stderr);
  if (r.status !== 0) problems.push(`promtool ${args.join(' ')} exited with ${r.status}`);
  return r.status === 0;
}

const rulesText = readFileSync(join(dir, 'alerts.yaml'), 'utf8');
const rules = parse(rulesText);
const tests = parse(readFileSync(join(dir, 'alerts_test.yaml'), 'utf8'));

const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert);
if (alerts.length === 0) problems.push('alerts.yaml has no alerting rule');
for (const r of alerts) {
  if (!['page', 'warning'].includes(r.labels?.severity))
    problems.push(`${r.alert}: severity label must be page or warning`);
  for (const a of ['summary', 'description', 'runbook'])
    if (!(typeof r.annotations?.[a] === 'string' && r.annotations[a].trim().length > 0))
      problems.push(`${r.alert}: no ${a} annotation`);
}

const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
const names = new Set(alerts.map((r) => r.alert));
for (const c of cases)
  if (!names.has(c.alertname)) problems.push(`alerts_test.yaml tests ${c.alertname}, which is no rule`);
for (const name of names) {
  const mine = cases.filter((c) => c.alertname === name);
  if (!mine.some((c) => (c.exp_alerts ?? []).length > 0))
    problems.push(`${name}: no test case where it fires`);
  if (!mine.some((c) => (c.exp_alerts ?? []).length === 0))
    problems.push(`${name}: no test case where it stays quiet`);
}

run(['check', 'rules', join(dir, 'alerts.yaml')]);

// The rules under test: the same expressions, labels and summaries, without the long texts.
const work = mkdtempSync(join(tmpdir(), 'token-broker-alerts-'));
try {
  for (const g of rules.groups)
    for (const r of g.rules)
      if (r.annotations) r.annotations = { summary: r.annotations.summary };
  writeFileSync(join(work, 'alerts.yaml'), stringify(rules));
  writeFileSync(join(work, 'alerts_test.yaml'), readFileSync(join(dir, 'alerts_test.yaml')));
  run(['test', 'rules', join(work, 'alerts_test.yaml')]);
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (problems.length) {
  for (const p of problems) console.error(`FAIL: ${p}`);
  process.exit(1);
}
console.log(`alert rules: ${alerts.length} rules checked, ${cases.length} promtool cases passed`);
