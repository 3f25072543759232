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
import { checkInput, runFramedFuzz, runFuzz } from "./fuzz.ts";

const INPUTS = 250_000;

// Codes the mutations must reach at either version: deep paths, not only header errors.
const COMMON = [
  "TRUNCATED_PACKET",
  "TRAILING_BYTES",
  "INVALID_FLAGS",
  "INVALID_UTF8",
  "INVALID_TOPIC",
  "MALFORMED_REMAINING_LENGTH",
  "INVALID_PACKET_TYPE",
  "INVALID_QOS",
];

// 3.1.1, then MQTT 5.0 at the same volume, with property blocks damaged byte
// by byte besides the mutations above.
const RUNS = [
  {
    version: 4,
    seeds: [1, 2],
    types: 14,
    codes: [
      ...COMMON,
      "INVALID_TOPIC_FILTER",
      "INVALID_CONNECT_FLAGS",
      "UNSUPPORTED_PROTOCOL",
      "INVALID_RETURN_CODE",
    ],
  },
  {
    version: 5,
    seeds: [3, 4],
    types: 15,
    codes: [
      ...COMMON,
      "MALFORMED_VARIABLE_BYTE_INTEGER",
      "PROPERTY_NOT_ALLOWED",
      "DUPLICATE_PROPERTY",
      "INVALID_PROPERTY",
      "INVALID_REASON_CODE",
    ],
  },
] as const;

for (const { version, seeds, types, codes } of RUNS) {
  for (const seed of seeds) {
    const name = `fuzz${version === 5 ? " 5.0" : ""}: ${INPUTS / 2} inputs from seed ${seed} ` +
      "give packets or ProtocolErrors";
    Deno.test(name, () => {
      const result = runFuzz(seed, INPUTS / 2, 20, version);
      assert.deepEqual(result.failures, []);
      const total = Object.values(result.counts).reduce((a, b) => a + b, 0);
      assert.equal(total, INPUTS / 2);
      const ok = Object.keys(result.counts).filter((k) => k.startsWith("ok:"));
      assert.equal(ok.length, types, `decoded types: ${ok.join(", ")}`);
      for (const code of codes) {
        assert((result.counts[`error:${code}`] ?? 0) > 0, `no input reached ${code}`);
      }
    });
  }
}

// The streaming path the client reads with: the same inputs framed in random chunks with a
// random Maximum Packet Size, at both versions, the same volume each.
for (const version of [4, 5] as const) {
  Deno.test(
    `fuzz${version === 5 ? " 5.0" : ""}: 50000 inputs framed in random chunks give the packets ` +
      "of whole framing, PACKET_TOO_LARGE above maxPacketSize (MQTT-3.1.2-25), or ProtocolErrors",
    () => {
      const result = runFramedFuzz(version * 7, 50_000, version);
      assert.deepEqual(result.failures, []);
      for (
        const outcome of [
          "framed:1",
          "framed:2",
          "error:PACKET_TOO_LARGE",
          "error:TRUNCATED_PACKET",
        ]
      ) {
        assert((result.counts[outcome] ?? 0) > 0, `no input reached ${outcome}`);
      }
    },
  );
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
