import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildRenderer, removeScratch, helmDir, render, valuesFile } from './render.js';

// The renderer stands in for `helm template`: each helm behaviour the chart relies on, on a small chart.
const fixture = join(helmDir, 'checks', 'fixtures', 'renderer');

function data(args: string[] = []): Record<string, string> {
  const result = render(fixture, args);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return parse(result.stdout.replace(/^---\n/, '')).data;
}

describe('the chart renderer (helm/render)', () => {
  beforeAll(() => {
    buildRenderer();
  }, 60_000);
  afterAll(removeScratch);

  it('renders templates with helm objects and functions, and skips partials and NOTES.txt', () => {
    const result = render(fixture, ['--name', 'rel', '--namespace', 'ns']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^---\n# Source: fixture\/templates\/all\.yaml\n/);
    expect(result.stdout).not.toContain('NOTES');
    expect(result.stdout).not.toContain('_helpers.tpl');
    const cm = parse(result.stdout.replace(/^---\n/, ''));
    expect(cm.metadata).toEqual({ name: 'fixture-rel', namespace: 'ns' });
    expect(cm.data).toMatchObject({
      chart: 'fixture/1.2.3/4.5',
      release: 'Helm rel true false',
      replicas: '3',
      missing: '',
      nested: '{"drop":"dropped","keep":"kept"}',
      yaml: '- a\n- b',
      fromYaml: 'c',
      tpl: 'release=rel',
      file: 'one: 1\n',
      glob: 'a.yaml: |\n  one: 1\nb.yaml: |\n  two: 2',
      lines: 'line1+line2',
      lookup: '{}',
      apps: 'true',
      monitoring: 'false',
      kube: 'v1.31.0',
      sprig: '1,2,3',
      template: 'fixture/templates/all.yaml',
    });
  });

  it('reads numbers as helm does (float64: 1000000 prints as 1e+06, toYaml writes it whole)', () => {
    expect(data()).toMatchObject({ big: '1e+06', bigYaml: '1000000' });
  });

  it('merges -f files over values.yaml, null removing a key, then --set', () => {
    const file = valuesFile({ nested: { drop: null, extra: 'x' }, replicas: 4 });
    expect(data(['-f', file])).toMatchObject({ nested: '{"extra":"x","keep":"kept"}', replicas: '4' });
    expect(data(['-f', file, '--set', 'replicas=5'])).toMatchObject({ replicas: '5' });
  });

  it('sets .Release.IsUpgrade with --upgrade', () => {
    expect(data(['--upgrade', '--name', 'r'])).toMatchObject({ release: 'Helm r false true' });
  });

  it('fails with the message of required, naming the template', () => {
    const result = render(fixture, ['--set', 'fail=true']);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'Error: execution error at (fixture/templates/all.yaml:28:3): fail is set: this message must reach the caller\n',
    );
  });
});
