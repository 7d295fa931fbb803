import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, loadConfig } from './config.js';
import { describeRedisTarget, oneRedisMode, redisEnv, redisTargetOf } from './redis.js';

const schema = z.object(redisEnv).superRefine(oneRedisMode);
const load = (env: Record<string, string>) => loadConfig('svc', schema, env);

describe('Redis settings', () => {
  it('reads one node from REDIS_URL, with the password from REDIS_PASSWORD when the URL has none', () => {
    expect(redisTargetOf(load({ REDIS_URL: 'redis://cache:6380/2' }))).toEqual({
      mode: 'single',
      url: 'redis://cache:6380/2',
      tls: undefined,
    });
    const target = redisTargetOf(load({ REDIS_URL: 'redis://cache:6380', REDIS_PASSWORD: 's3cr:t' }));
    expect(target).toMatchObject({ mode: 'single', url: 'redis://:s3cr%3At@cache:6380' });
    expect(describeRedisTarget(target!)).toBe('Redis (redis://:***@cache:6380)');
  });

  it('reads a cluster from REDIS_CLUSTER_NODES seeds (port 6379 when left out, IPv6 in brackets)', () => {
    const config = load({
      REDIS_CLUSTER_NODES: ' redis-0.redis:7000, redis-1.redis ,[::1]:7002',
      REDIS_PASSWORD: 'pw',
      REDIS_TLS: 'true',
    });
    expect(redisTargetOf(config)).toEqual({
      mode: 'cluster',
      nodes: [
        { host: 'redis-0.redis', port: 7000 },
        { host: 'redis-1.redis', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      username: undefined,
      password: 'pw',
      tls: {},
    });
  });

  it('names no Redis when neither is set (the in-process stand-ins)', () => {
    expect(redisTargetOf(load({}))).toBeUndefined();
    expect(redisTargetOf(load({ REDIS_CLUSTER_NODES: '' }))).toBeUndefined();
  });

  it('refuses both modes at once, a bad seed, and cluster TLS with one node, each with one clear line', () => {
    expect(() => load({ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:7000' })).toThrow(
      new ConfigError(
        'svc: invalid configuration: REDIS_CLUSTER_NODES: set either REDIS_URL (one Redis node) or ' +
          'REDIS_CLUSTER_NODES (a Redis Cluster), not both',
      ),
    );
    expect(() => load({ REDIS_CLUSTER_NODES: 'a:7000,b:99999' })).toThrow(
      'svc: invalid configuration: REDIS_CLUSTER_NODES: "b:99999" is not a host:port seed node',
    );
    expect(() => load({ REDIS_CLUSTER_NODES: 'a:7000,http://b' })).toThrow('"http://b" is not a host:port seed node');
    expect(() => load({ REDIS_URL: 'redis://a:6379', REDIS_TLS: 'true' })).toThrow(
      'REDIS_TLS: is for a cluster; for one node use a rediss:// REDIS_URL',
    );
  });
});
