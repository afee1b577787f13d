/**
 * The gateways' expiring keys: an entry lives `ttlMs` from its last set, expired entries leave
 * memory from the front of the map, and a key set again moves behind the others. Every call
 * takes the time as an argument, so no test needs a timer or a permission.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ExpiringKeys } from "../../stages/_expiring_keys.ts";

Deno.test("expiring keys: a key is there until ttlMs after its set, gone from that instant", () => {
  const keys = new ExpiringKeys<string, string>(10);
  keys.set("a", "pay_1", 100);
  assert.equal(keys.get("a", 100), "pay_1");
  assert.equal(keys.get("a", 109), "pay_1");
  assert.equal(keys.get("a", 110), undefined);
  assert.equal(keys.size, 0, "the expired key left memory");
  assert.equal(keys.get("never", 110), undefined);
});

Deno.test("expiring keys: a sweep removes the expired keys at the front and keeps the rest", () => {
  const keys = new ExpiringKeys<string, number>(10);
  keys.set("a", 1, 0);
  keys.set("b", 2, 3);
  keys.set("c", 3, 6);
  keys.sweep(9);
  assert.equal(keys.size, 3, "nothing expired before the oldest key did");
  keys.sweep(13);
  assert.deepEqual([...keys.entries(13)], [["c", 3]]);
  assert.equal(keys.size, 1);
  keys.sweep(16);
  assert.equal(keys.size, 0);
  // Empty again: the next key starts the expiry over.
  keys.set("d", 4, 20);
  keys.sweep(29);
  assert.deepEqual([...keys.entries(29)], [["d", 4]]);
});

Deno.test("expiring keys: a key set again lives ttlMs from then, behind the others", () => {
  const keys = new ExpiringKeys<string, string>(10);
  keys.set("a", "first", 0);
  keys.set("b", "b", 1);
  keys.set("a", "again", 2);
  assert.deepEqual([...keys.entries(2)], [["b", "b"], ["a", "again"]], "oldest first");
  // The first expiry of "a" has passed: the sweep finds "b" at the front, still alive.
  assert.equal(keys.get("a", 10), "again");
  assert.equal(keys.size, 2);
  assert.equal(keys.get("b", 11), undefined);
  assert.equal(keys.get("a", 11), "again");
  assert.equal(keys.get("a", 12), undefined);
  assert.equal(keys.size, 0);
});

Deno.test("expiring keys: entries() sweeps when called, before its first value is read", () => {
  const keys = new ExpiringKeys<string, number>(5);
  keys.set("a", 1, 0);
  keys.set("b", 2, 4);
  const live = keys.entries(5);
  assert.equal(keys.size, 1, "swept at the call");
  assert.deepEqual([...live], [["b", 2]]);
});

Deno.test("expiring keys: a value is kept by reference, so callers may update it in place", () => {
  const keys = new ExpiringKeys<string, { requests: number }>(10);
  keys.set("a", { requests: 0 }, 0);
  keys.get("a", 1)!.requests++;
  assert.equal(keys.get("a", 2)?.requests, 1);
});
