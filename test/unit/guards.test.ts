// Two small guards: failed-login counting (per address and per user, a window from the first
// failure) and the cache disk's health (bypass after N failures, a failing probe re-arms it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailedLogins, basicUserName } from '../../src/gateway/auth-limit.js';
import { DiskHealth } from '../../src/cachemgr/diskhealth.js';

test('FailedLogins: blocked after max failures for the rest of the window; success clears the user only', () => {
  const f = new FailedLogins(3, 60_000);
  const keys = ['ip a', 'user u'];
  for (let i = 0; i < 2; i++) f.failed(keys);
  assert.equal(f.blockedFor(keys), 0);
  f.failed(keys);
  const wait = f.blockedFor(['ip a']);
  assert.ok(wait > 55 && wait <= 60, `wait ${wait}`);
  assert.ok(f.blockedFor(['ip b', 'user u']) > 0, 'the user is blocked from another address too');
  assert.equal(f.blockedFor(['ip b', 'user v']), 0);
  f.succeeded('user u');
  assert.equal(f.blockedFor(['ip b', 'user u']), 0);
  assert.ok(f.blockedFor(['ip a']) > 0, 'the address stays blocked');
});

test('basicUserName: the name before the first colon, nothing for other schemes', () => {
  const b = (s: string) => 'Basic ' + Buffer.from(s).toString('base64');
  assert.equal(basicUserName(b('alice:pw:with:colons')), 'alice');
  assert.equal(basicUserName(b(':pw')), undefined);
  assert.equal(basicUserName('Bearer x'), undefined);
  assert.equal(basicUserName(undefined), undefined);
});

test('DiskHealth: bypassed after the threshold, reported once; a failing probe re-arms; a success ends it', async () => {
  const events: boolean[] = [];
  const h = new DiskHealth(3, 50, (b) => events.push(b));
  h.failed(new Error('x'));
  h.succeeded(); // a success in between resets the count
  h.failed(new Error('x'));
  h.failed(new Error('x'));
  assert.equal(h.bypassed, false);
  h.failed(new Error('ENOSPC'));
  assert.equal(h.bypassed, true);
  assert.deepEqual(events, [true]);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(h.bypassed, false, 'one probe is let through after the pause');
  h.failed(new Error('still full'));
  assert.equal(h.bypassed, true, 'a failing probe pauses again at once');
  assert.deepEqual(events, [true], 'and is not reported again');
  await new Promise((r) => setTimeout(r, 60));
  h.succeeded();
  assert.deepEqual(events, [true, false]);
});
