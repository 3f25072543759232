/**
 * Seeded fuzzing of the decoder: random bytes and mutated valid packets
 * (bit flips, truncations, length-field corruption, insertions, deletions,
 * overwrites, splices). Every input must give a valid packet that
 * re-encodes to the same bytes, an incomplete-packet answer, or a
 * ProtocolError; anything else fails. Both protocol versions get the same
 * volume; at 5.0 property blocks are also damaged byte by byte.
 * `deno task fuzz` runs millions.
 */
import assert from "node:assert/strict";
import { checkInput, runFuzz } from "./fuzz.ts";

const INPUTS = 250_000;

for (const seed of [1, 2]) {
  Deno.test(`fuzz: ${INPUTS / 2} inputs from seed ${seed} give packets or ProtocolErrors`, () => {
    const result = runFuzz(seed, INPUTS / 2);
    assert.deepEqual(result.failures, []);
    const total = Object.values(result.counts).reduce((a, b) => a + b, 0);
    assert.equal(total, INPUTS / 2);
    // The mutations must reach deep paths, not only header errors.
    const ok = Object.keys(result.counts).filter((k) => k.startsWith("ok:"));
    assert.equal(ok.length, 14, `decoded types: ${ok.join(", ")}`);
    for (
      const code of [
        "TRUNCATED_PACKET",
        "TRAILING_BYTES",
        "INVALID_FLAGS",
        "INVALID_UTF8",
        "INVALID_TOPIC",
        "INVALID_TOPIC_FILTER",
        "MALFORMED_REMAINING_LENGTH",
        "INVALID_PACKET_TYPE",
        "INVALID_CONNECT_FLAGS",
        "UNSUPPORTED_PROTOCOL",
        "INVALID_RETURN_CODE",
        "INVALID_QOS",
      ]
    ) {
      assert((result.counts[`error:${code}`] ?? 0) > 0, `no input reached ${code}`);
    }
  });
}

// MQTT 5.0: the same volume, with property blocks damaged byte by byte besides
// the mutations above.
for (const seed of [3, 4]) {
  Deno.test(`fuzz 5.0: ${INPUTS / 2} inputs from seed ${seed} give packets or ProtocolErrors`, () => {
    const result = runFuzz(seed, INPUTS / 2, 20, 5);
    assert.deepEqual(result.failures, []);
    const total = Object.values(result.counts).reduce((a, b) => a + b, 0);
    assert.equal(total, INPUTS / 2);
    const ok = Object.keys(result.counts).filter((k) => k.startsWith("ok:"));
    assert.equal(ok.length, 15, `decoded types: ${ok.join(", ")}`);
    for (
      const code of [
        "TRUNCATED_PACKET",
        "TRAILING_BYTES",
        "INVALID_FLAGS",
        "INVALID_UTF8",
        "MALFORMED_REMAINING_LENGTH",
        "MALFORMED_VARIABLE_BYTE_INTEGER",
        "INVALID_PACKET_TYPE",
        "PROPERTY_NOT_ALLOWED",
        "DUPLICATE_PROPERTY",
        "INVALID_PROPERTY",
        "INVALID_REASON_CODE",
        "INVALID_TOPIC",
        "INVALID_QOS",
      ]
    ) {
      assert((result.counts[`error:${code}`] ?? 0) > 0, `no input reached ${code}`);
    }
  });
}

Deno.test("fuzz harness: checkInput classifies known inputs", () => {
  // Sanity check of the harness itself on known inputs.
  assert.equal(checkInput(new Uint8Array([0xc0, 0x00])), "ok:pingreq");
  assert.equal(checkInput(new Uint8Array([0x30, 0x05, 0x00])), "incomplete");
  assert.equal(checkInput(new Uint8Array([0x36, 0x00])), "error:INVALID_QOS");
  assert.equal(checkInput(new Uint8Array([0xc0, 0x00, 0xff])), "ok:pingreq");
  // AUTH exists at 5.0 only; a zero Topic Alias is refused (MQTT-3.3.2-8).
  assert.equal(checkInput(new Uint8Array([0xf0, 0x00])), "error:INVALID_PACKET_TYPE");
  assert.equal(checkInput(new Uint8Array([0xf0, 0x00]), 5), "ok:auth");
  assert.equal(
    checkInput(new Uint8Array([0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x00]), 5),
    "error:INVALID_PROPERTY",
  );
});
