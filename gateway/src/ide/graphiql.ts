import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';

const require = createRequire(import.meta.url);

/** Where an installed package lives (its files are served as they ship; none exports its UMD builds). */
function packageDirectory(name: string): string {
  let directory = dirname(require.resolve(name));
  while (!existsSync(join(directory, 'package.json')) || readPackageName(directory) !== name) {
    const parent = dirname(directory);
    if (parent === directory) throw new Error(`cannot find the ${name} package`);
    directory = parent;
  }
  return directory;
}
const readPackageName = (directory: string) =>
  (JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { name?: string }).name;

/**
 * GraphiQL and what it runs on, from node_modules: the page works with no internet (Apollo's default
 * landing page loads the Sandbox from a CDN). React 18 and graphql-ws ship browser builds (UMD).
 */
export const graphiqlAssets: Record<string, { file: string; type: string }> = {
  'graphiql.min.css': { file: join(packageDirectory('graphiql'), 'graphiql.min.css'), type: 'text/css' },
  'graphiql.min.js': { file: join(packageDirectory('graphiql'), 'graphiql.min.js'), type: 'text/javascript' },
  'react.production.min.js': {
    file: join(packageDirectory('react'), 'umd/react.production.min.js'),
    type: 'text/javascript',
  },
  'react-dom.production.min.js': {
    file: join(packageDirectory('react-dom'), 'umd/react-dom.production.min.js'),
    type: 'text/javascript',
  },
  'graphql-ws.min.js': { file: join(packageDirectory('graphql-ws'), 'umd/graphql-ws.min.js'), type: 'text/javascript' },
};

export const GRAPHIQL_ASSETS_PATH = '/graphiql';

const defaultQuery = `# The food supergraph. Log in (mutation logIn) and put the token in Headers:
#   { "Authorization": "Bearer <token>" }
# Subscriptions (orderStatusChanged, orderUpdates) run over WebSockets with the same header.
query Menu {
  meals(first: 5) {
    edges { node { name price { amount currency } available } }
  }
}
`;

/**
 * The page: GraphiQL on this gateway's /graphql, queries and mutations over HTTP and subscriptions over
 * graphql-ws on the same path. The Authorization header from GraphiQL's headers editor goes with both
 * (for WebSockets as the connection's `authorization` parameter, one connection per token).
 */
export function graphiqlPage(): string {
  const script = (name: string) => `<script src="${GRAPHIQL_ASSETS_PATH}/${name}"></script>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Food supergraph · GraphiQL</title>
<link rel="stylesheet" href="${GRAPHIQL_ASSETS_PATH}/graphiql.min.css">
<style>body { margin: 0; } #graphiql { height: 100vh; }</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
${script('react.production.min.js')}
${script('react-dom.production.min.js')}
${script('graphql-ws.min.js')}
${script('graphiql.min.js')}
<script>
  const url = new URL(location.pathname, location.href).href;
  // One graphql-ws client per Authorization value: the token in the headers editor is the connection's.
  const fetchers = new Map();
  const fetcherFor = (authorization) => {
    if (!fetchers.has(authorization)) {
      const wsClient = graphqlWs.createClient({
        url: url.replace(/^http/, 'ws'),
        lazy: true,
        connectionParams: authorization ? { authorization } : {},
        shouldRetry: () => true,
      });
      fetchers.set(authorization, GraphiQL.createFetcher({ url, wsClient }));
    }
    return fetchers.get(authorization);
  };
  const fetcher = (params, options) => {
    const headers = (options && options.headers) || {};
    const name = Object.keys(headers).find((key) => key.toLowerCase() === 'authorization');
    return fetcherFor(name ? headers[name] : '')(params, options);
  };
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, { fetcher, defaultQuery: ${JSON.stringify(defaultQuery)}, shouldPersistHeaders: true }),
  );
</script>
</body>
</html>
`;
}

/** Serves GraphiQL as the landing page of GET /graphql (browsers ask for text/html). Development only. */
export function graphiqlLandingPage<Ctx extends BaseContext>(): ApolloServerPlugin<Ctx> {
  const html = graphiqlPage();
  return {
    async serverWillStart() {
      return {
        async renderLandingPage() {
          return { html };
        },
      };
    },
  };
}
