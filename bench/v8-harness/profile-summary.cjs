// Self time per function of a node --cpu-prof profile: wasm functions (by name-section
// name), the JS host stubs, and the rest.
//   node bench/v8-harness/profile-summary.cjs PROFILE.cpuprofile [TOP]
'use strict';
const fs = require('fs');

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg || 40);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children || []) parent.set(c, n.id);
const keyOf = (node) => {
  const f = node.callFrame;
  const kind = f.url.startsWith('wasm://') ? 'wasm' : f.url ? 'js' : 'vm';
  return `${kind}\t${f.functionName || '(anonymous)'}${kind === 'js' ? ` ${f.url.split('/').pop()}:${f.lineNumber + 1}` : ''}`;
};
const self = new Map();
const inclusive = new Map();
const dt = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const us = dt[i] || 0;
  const node = byId.get(profile.samples[i]);
  const key = keyOf(node);
  self.set(key, (self.get(key) || 0) + us);
  const seen = new Set();
  for (let id = node.id; id !== undefined; id = parent.get(id)) {
    const k = keyOf(byId.get(id));
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) || 0) + us);
  }
}
let total = 0;
const kinds = { wasm: 0, js: 0, vm: 0 };
for (const [key, us] of self) {
  total += us;
  kinds[key.split('\t')[0]] += us;
}
const idle = [...self].filter(([k]) => /\(idle\)|\(program\)|\(garbage collector\)/.test(k));
console.log(`total ${(total / 1000).toFixed(0)} ms: wasm ${(100 * kinds.wasm / total).toFixed(1)} %, JS ${(100 * kinds.js / total).toFixed(1)} %, other ${(100 * kinds.vm / total).toFixed(1)} % (${idle.map(([k, v]) => `${k.split('\t')[1]} ${(100 * v / total).toFixed(1)} %`).join(', ')})`);
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  const [kind, name] = key.split('\t');
  console.log(`${(100 * us / total).toFixed(2).padStart(6)} %  ${kind.padEnd(4)} ${name}`);
}
console.log('\ninclusive (wasm functions):');
for (const [key, us] of [...inclusive].filter(([k]) => k.startsWith('wasm')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${(100 * us / total).toFixed(2).padStart(6)} %  ${key.split('\t')[1]}`);
}
