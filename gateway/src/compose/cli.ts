import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { apiSchemaPath, composeSupergraph, CompositionError, describeProblem, supergraphPath } from './compose.js';

/**
 * `write` regenerates the published schemas (supergraph.graphql for the gateway, api-schema.graphql
 * for clients); `check` fails when either is stale (CI).
 */
const mode = process.argv[2];
let composed;
try {
  composed = composeSupergraph();
} catch (error) {
  if (!(error instanceof CompositionError)) throw error;
  console.error(error.message);
  process.exit(1);
}
for (const hint of composed.hints) console.warn(`hint: ${describeProblem(hint)}`);
const artefacts = [
  { path: fileURLToPath(supergraphPath), text: composed.supergraphSdl },
  { path: fileURLToPath(apiSchemaPath), text: composed.apiSchemaSdl },
];

if (mode === 'write') {
  for (const { path, text } of artefacts) {
    writeFileSync(path, text);
    console.log(`wrote ${path}`);
  }
} else if (mode === 'check') {
  const stale = artefacts.filter(({ path, text }) => {
    try {
      return readFileSync(path, 'utf8') !== text;
    } catch {
      return true; // missing counts as stale
    }
  });
  for (const { path } of stale) console.error(`${path} is stale: run \`pnpm compose\` and commit the result.`);
  if (stale.length > 0) process.exit(1);
  console.log('supergraph.graphql and api-schema.graphql are current');
} else {
  console.error('usage: cli.ts write|check');
  process.exit(2);
}
