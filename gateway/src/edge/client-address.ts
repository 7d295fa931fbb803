import type { IncomingMessage } from 'node:http';
import proxyAddr from 'proxy-addr';

/**
 * Which proxies in front of the gateway may say who the client is (TRUST_PROXY): `false` trusts none
 * (the socket's peer is the client), `true` trusts all, a number trusts that many hops, anything else
 * is a comma-separated list of addresses, subnets or `loopback`/`linklocal`/`uniquelocal`: the same
 * rules as Express's "trust proxy".
 */
export function compileTrustProxy(setting: string): (address: string, hop: number) => boolean {
  if (setting === 'false' || setting === '') return () => false;
  if (setting === 'true') return () => true;
  if (/^\d+$/.test(setting)) {
    const hops = Number(setting);
    return (_address, hop) => hop < hops;
  }
  return proxyAddr.compile(setting.split(',').map((item) => item.trim()));
}

/** The client's address for one HTTP request or WebSocket upgrade, honouring trusted proxies only. */
export function clientAddress(request: IncomingMessage, trust: (address: string, hop: number) => boolean): string {
  return proxyAddr(request, trust);
}
