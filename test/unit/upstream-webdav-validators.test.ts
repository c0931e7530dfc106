import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry } from '../../src/upstream/types.js';
import { Generations, parseValidator, splitGen } from '../../src/upstream/webdav/validators.js';

// Generations: how same-second rewrites through one WebDAV upstream are told apart, and how
// much of that is remembered (bounded per path and in paths).

const file = (path: string, validator: string): Entry => ({
  name: path.slice(1), path, kind: 'file', size: 3, mtimeMs: 1000, birthtimeMs: 1000, validator,
});
const V = 'lastmodified:1000:3';

describe('Generations', () => {
  it('a rewrite the server reports with the same validator gets the next generation', () => {
    const g = new Generations();
    const first = g.replaced('/f', null, file('/f', V));
    assert.equal(first.validator, V, 'the first write keeps the server validator');
    const second = g.replaced('/f', first, file('/f', V));
    assert.equal(second.validator, `${V}:g1`);
    const third = g.replaced('/f', second, file('/f', g.withGen('/f', V)));
    assert.equal(third.validator, `${V}:g2`);
    assert.equal(g.withGen('/f', V), `${V}:g2`, 'stat and list show the same generation');
    assert.equal(g.withGen('/other', V), V, 'other paths are untouched');
    const other = g.replaced('/f', third, file('/f', 'lastmodified:2000:3'));
    assert.equal(other.validator, 'lastmodified:2000:3', 'a new server validator starts at generation 0');
    assert.equal(g.withGen('/f', V), `${V}:g2`, 'the older validator is still remembered');
  });

  it('take hands over what a path remembered, oldest first, and forgets it', () => {
    const g = new Generations();
    g.remember('/a', 'x', 1);
    g.remember('/a', 'y', 2);
    g.remember('/a', 'x', 3); // rewritten: now the newest
    assert.deepEqual(g.take('/a'), [['y', 2], ['x', 3]]);
    assert.equal(g.has('/a'), false);
    assert.equal(g.of('/a', 'x'), undefined);
    assert.equal(g.take('/a'), undefined);
  });

  it('keeps the 16 newest validators of a path', () => {
    const g = new Generations();
    for (let i = 0; i < 20; i++) g.remember('/p', `v${i}`, i + 1);
    const kept = g.take('/p') ?? [];
    assert.equal(kept.length, 16);
    assert.deepEqual(kept[0], ['v4', 5]);
    assert.deepEqual(kept[15], ['v19', 20]);
  });

  it('forgets the least recently written path beyond 10 000, not one just rewritten or read', () => {
    const g = new Generations();
    for (let i = 0; i < 10_000; i++) g.remember(`/f${i}`, V, 1);
    g.remember('/f0', V, 2); // written again: most recent now
    assert.equal(g.of('/f1', V), 1); // a lookup does not make /f1 recent
    g.remember('/new', V, 1);
    assert.equal(g.of('/f0', V), 2);
    assert.equal(g.has('/f1'), false, 'the least recently written path went');
    assert.equal(g.of('/f2', V), 1);
    assert.equal(g.of('/new', V), 1);
  });
});

describe('validator forms', () => {
  it('splitGen and parseValidator read what entries carry', () => {
    assert.deepEqual(splitGen(`${V}:g7`), { base: V, gen: 7 });
    assert.deepEqual(splitGen(V), { base: V, gen: 0 });
    assert.deepEqual(parseValidator(`"abc":1000:3:g2`), { etag: '"abc"', mtimeMs: 1000, size: 3 });
    assert.deepEqual(parseValidator(V), { mtimeMs: 1000, size: 3 });
    assert.equal(parseValidator('dir'), null);
  });
});
