// Medians of the Lighthouse reports that scripts/lighthouse.sh wrote, as a Markdown
// table: one row per page and configuration.
import { readdirSync, readFileSync } from 'node:fs';

const dir = process.argv[2];
const groups = new Map();
for (const f of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
  const [page, config] = f.split('.');
  const key = `${page}\t${config}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')));
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const score = (r, c) => Math.round((r.categories[c]?.score ?? 0) * 100);
const audit = (r, a) => r.audits[a]?.numericValue ?? NaN;
console.log('| page | config | runs | perf | a11y | best pr. | LCP ms | FCP ms | CLS | TBT ms | KB transferred |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
const failing = [];
for (const [key, reports] of groups) {
  const [page, config] = key.split('\t');
  const m = (f) => median(reports.map(f));
  const row = {
    perf: m((r) => score(r, 'performance')),
    a11y: m((r) => score(r, 'accessibility')),
    bp: m((r) => score(r, 'best-practices')),
    lcp: m((r) => audit(r, 'largest-contentful-paint')),
    fcp: m((r) => audit(r, 'first-contentful-paint')),
    cls: m((r) => audit(r, 'cumulative-layout-shift')),
    tbt: m((r) => audit(r, 'total-blocking-time')),
    kb: m((r) => audit(r, 'total-byte-weight') / 1024),
  };
  console.log(`| ${page.replace(/_/g, '/')} | ${config} | ${reports.length} | ${row.perf} | ${row.a11y} | ${row.bp} | ${row.lcp.toFixed(0)} | ${row.fcp.toFixed(0)} | ${row.cls.toFixed(3)} | ${row.tbt.toFixed(0)} | ${row.kb.toFixed(1)} |`);
  // What keeps a score under 100, from the median run's failed audits.
  for (const r of reports.slice(0, 1)) {
    for (const [id, a] of Object.entries(r.audits)) {
      if (a.score !== null && a.score < 0.9 && a.scoreDisplayMode !== 'informative' && a.scoreDisplayMode !== 'manual' && a.scoreDisplayMode !== 'notApplicable') {
        failing.push(`${page.replace(/_/g, '/')} ${config}: ${id} (${a.score}) ${a.displayValue ?? ''}`);
      }
    }
  }
}
if (failing.length) console.log(`\nAudits under 0.9 (first run of each):\n${[...new Set(failing)].map((l) => `- ${l}`).join('\n')}`);
