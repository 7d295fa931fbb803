import { runMain, shutdownOnSignal } from '@food/platform';
import { startGateway } from './app.js';
import { loadGatewayConfig } from './config.js';

runMain(async () => {
  const gateway = await startGateway(loadGatewayConfig());
  shutdownOnSignal(() => gateway.close());
});
