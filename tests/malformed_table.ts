/**
 * The checks of the malformed-input tables (tests/codec_malformed_test.ts for 3.1.1,
 * tests/codec_v5_malformed_test.ts for 5.0): each case expects a specific ProtocolError code and
 * packet type, and its message must cite the rule in brackets at the start of the case's name.
 * Each test file registers its tests itself, so that tests/conformance_test.ts, which reads test
 * names from the sources, finds them with their table rows.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ProtocolError, type ProtocolErrorCode } from "../lib/errors.ts";
import {
  type CodecOptions,
  decodePacket,
  encodedLength,
  encodeInto,
  encodePacket,
  type Packet,
  packetLength,
  type PacketTypeName,
} from "../lib/codec/mod.ts";

/** Bytes the decoder must refuse. */
export interface DecodeCase {
  /** Starts with the rule in brackets; the error message must contain it. */
  name: string;
  bytes: number[];
  code: ProtocolErrorCode;
  type: PacketTypeName | undefined;
}

/** A packet the encoder must refuse. */
export interface EncodeCase {
  /** Starts with the rule in brackets; the error message must contain it. */
  name: string;
  packet: Packet;
  code: ProtocolErrorCode;
  /** Default: the table's options. */
  options?: CodecOptions;
}

/** The rule in brackets at the start of a case's name. */
export function ruleOf(name: string): string {
  const m = /^\[([^\]]+)\]/.exec(name);
  assert(m, `case name must start with its rule: ${name}`);
  return m[1];
}

/**
 * Asserts that the decoder refuses `c.bytes` with `c.code`, naming `c.type` and the rule. The
 * packet is decoded from the middle of a poisoned buffer: reading outside it would show. With
 * `framed`, every case's fixed header frames it whole (only its body is wrong): `packetLength`
 * must give its length, so the error is the decoder's and not the framing's.
 */
export function assertDecodeRefuses(
  c: DecodeCase,
  options?: CodecOptions,
  framed = false,
): void {
  const buf = new Uint8Array([0x00, ...c.bytes, 0x00, 0x00]);
  const end = 1 + c.bytes.length;
  if (framed) {
    assert.equal(packetLength(buf, 1, end, undefined, options?.protocolVersion), c.bytes.length);
  }
  assert.throws(
    () => decodePacket(buf, 1, end, options),
    (err: unknown) => {
      assert(err instanceof ProtocolError, `not a ProtocolError: ${err}`);
      assert.equal(err.code, c.code, err.message);
      assert.equal(err.packetType, c.type);
      assert(err.message.includes(ruleOf(c.name)), `message "${err.message}" lacks the rule`);
      return true;
    },
  );
}

/** Asserts that a table has at least `minimum` cases, each named by its rule. */
export function assertTable(cases: readonly { name: string }[], minimum: number): void {
  assert(cases.length >= minimum, `${cases.length} cases`);
  for (const c of cases) ruleOf(c.name);
}

/**
 * Asserts that `encodePacket`, `encodedLength` and `encodeInto` all refuse `c.packet` with
 * `c.code` (under `c.options`, else `options`), and that `encodeInto` writes nothing.
 */
export function assertEncodeRefuses(c: EncodeCase, options?: CodecOptions): void {
  const codec = c.options ?? options;
  const check = (err: unknown) => {
    assert(err instanceof ProtocolError, `not a ProtocolError: ${err}`);
    assert.equal(err.code, c.code, err.message);
    // A packet of no known type has no packet type to name.
    if (c.code !== "INVALID_PACKET_TYPE") assert.equal(err.packetType, c.packet.type);
    // maxPacketSize is the caller's limit, not a rule of the specification.
    const rule = ruleOf(c.name);
    if (rule !== "maxPacketSize") {
      assert(err.message.includes(rule), `message "${err.message}" lacks the rule`);
    }
    return true;
  };
  assert.throws(() => encodePacket(c.packet, codec), check);
  assert.throws(() => encodedLength(c.packet, codec), check);
  // encodeInto writes nothing when the packet is illegal.
  const target = new Uint8Array(64).fill(0xee);
  assert.throws(() => encodeInto(c.packet, target, 0, codec), check);
  assert(target.every((b) => b === 0xee));
}
