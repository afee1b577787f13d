import assert from "node:assert/strict";
import { z } from "zod";
import { decodeValue, encodeValue } from "../../pipeline/codec.ts";
import { ValidationError } from "../../pipeline/errors.ts";

const Text = z.object({ text: z.string() });

Deno.test("decodeValue() rejects bytes that are not UTF-8 as a ValidationError", () => {
  // `{"text":"` + an invalid byte + `"}`
  const bytes = new Uint8Array([...new TextEncoder().encode('{"text":"'), 0xff, 0x22, 0x7d]);
  assert.throws(() => decodeValue(Text, bytes), ValidationError);
  // A truncated sequence.
  const truncated = new Uint8Array([...new TextEncoder().encode('{"text":"'), 0xe2, 0x82]);
  assert.throws(() => decodeValue(Text, truncated), ValidationError);
});

Deno.test("decodeValue() accepts valid UTF-8, a real U+FFFD and multi-byte text included", () => {
  for (const text of ["plain", "caf\u00e9 \u20ac \u{1F600}", "replacement \uFFFD here"]) {
    const bytes = new TextEncoder().encode(JSON.stringify({ text }));
    assert.deepEqual(decodeValue(Text, bytes), { text });
  }
});

Deno.test("encodeValue() gives each value bytes of its own, never written over by later values", () => {
  const values = Array.from(
    { length: 2000 },
    (_, i) => ({ text: `value ${i} ${"\u20ac".repeat(i % 7)}` }),
  );
  const encoded = values.map((value) => encodeValue(Text, value));
  // Long values too: larger than a slab's share.
  const long = { text: "x".repeat(100_000) };
  const longBytes = encodeValue(Text, long);
  encoded.push(encodeValue(Text, { text: "after" }));
  for (let i = 0; i < values.length; i++) {
    assert.deepEqual(JSON.parse(new TextDecoder().decode(encoded[i])), values[i]);
  }
  assert.deepEqual(JSON.parse(new TextDecoder().decode(longBytes)), long);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(encoded.at(-1))), { text: "after" });
});
