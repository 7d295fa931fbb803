import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { composeSupergraph, supergraphPath } from './compose.js';

/** `write` regenerates the committed supergraph.graphql; `check` fails when it is stale (CI). */
const mode = process.argv[2];
const composed = composeSupergraph();
const path = fileURLToPath(supergraphPath);

if (mode === 'write') {
  writeFileSync(path, composed);
  console.log(`wrote ${path}`);
} else if (mode === 'check') {
  let committed = '';
  try {
    committed = readFileSync(path, 'utf8');
  } catch {
    // Missing counts as stale.
  }
  if (committed !== composed) {
    console.error(`${path} is stale: run \`pnpm compose\` and commit the result.`);
    process.exit(1);
  }
  console.log('supergraph.graphql is current');
} else {
  console.error('usage: cli.ts write|check');
  process.exit(2);
}
