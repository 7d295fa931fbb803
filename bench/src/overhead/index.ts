import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { benchDir } from '../config.js';
import { freePort, graphqlReady, start, waitUntil, type Managed } from '../procs.js';
import { overheadSdl, overheadSubgraphNames, type OverheadSubgraph } from './subgraphs.js';

export { OVERHEAD_QUERY } from './subgraphs.js';

const serverFile = fileURLToPath(new URL('./server.ts', import.meta.url));

/** server.ts in one of its modes, as a process of its own. */
const startServer = (mode: 'subgraphs' | 'ceiling', name: string, logDir: string, env: Record<string, string>) =>
  start({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', serverFile, mode],
    cwd: benchDir,
    logDir,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', ...env },
  });

/** The public benchmarks' fixed subgraph delay. */
export const OVERHEAD_DELAY_MS = 4;

export interface OverheadBackend {
  urls: Record<OverheadSubgraph, string>;
  process: Managed;
  /** The four fixture subgraphs composed, with their URLs: every target reads it. */
  supergraphPath: string;
}

/** Starts the fixture subgraphs (one process for the four) and composes their supergraph. */
export async function startOverheadBackend(logDir: string, supergraphPath: string): Promise<OverheadBackend> {
  const ports = Object.fromEntries(
    await Promise.all(overheadSubgraphNames.map(async (name) => [name, await freePort()] as const)),
  ) as Record<OverheadSubgraph, number>;
  const urls = Object.fromEntries(
    overheadSubgraphNames.map((name) => [name, `http://127.0.0.1:${ports[name]}/graphql`]),
  ) as Record<OverheadSubgraph, string>;
  const managed = startServer('subgraphs', 'overhead-subgraphs', logDir, {
    OVERHEAD_DELAY_MS: String(OVERHEAD_DELAY_MS),
    OVERHEAD_PORTS: overheadSubgraphNames.map((name) => `${name}:${ports[name]}`).join(','),
  });
  for (const name of overheadSubgraphNames)
    await waitUntil(`overhead ${name}`, graphqlReady(urls[name]), managed, 60_000);
  const composed = composeServices(
    overheadSubgraphNames.map((name) => ({ name, url: urls[name], typeDefs: parse(overheadSdl(name)) })),
  );
  if (composed.errors) {
    await managed.stop();
    throw new Error(`the overhead subgraphs do not compose: ${composed.errors.map((e) => e.message).join('; ')}`);
  }
  writeFileSync(supergraphPath, composed.supergraphSdl);
  return { urls, process: managed, supergraphPath };
}

/** The ceiling: a plain Node HTTP server that answers the bytes in `bodyFile` to every request. */
export async function startCeiling(
  bodyFile: string,
  logDir: string,
  tag: string,
): Promise<{ url: string; process: Managed }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/graphql`;
  const managed = startServer('ceiling', `ceiling-${tag}`, logDir, {
    CEILING_PORT: String(port),
    CEILING_BODY_FILE: bodyFile,
  });
  await waitUntil('ceiling', graphqlReady(url), managed, 60_000);
  return { url, process: managed };
}
