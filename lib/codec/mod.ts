/**
 * The MQTT codec: packet objects to bytes and back, with every rule of the
 * specification that can be checked on one packet.
 *
 * @example
 * ```ts
 * import { decodePacket, encodePacket, packetLength } from "./mod.ts";
 * const bytes = encodePacket({ type: "puback", packetId: 7 });
 * const total = packetLength(bytes, 0, bytes.length); // 4
 * console.log(decodePacket(bytes, 0, total)); // { type: "puback", packetId: 7 }
 * ```
 *
 * @module
 */
export type { CodecOptions } from "./options.ts";
export { encodedLength, encodeInto, encodePacket } from "./encode.ts";
export { decodePacket, packetLength } from "./decode.ts";
export { validateTopicFilter, validateTopicName } from "./topic.ts";
export { MAX_PACKET_SIZE, MAX_REMAINING_LENGTH } from "./remaining_length.ts";
export * from "./packet.ts";
export type {
  AckProperties,
  AuthProperties,
  ConnackProperties,
  ConnectProperties,
  DisconnectProperties,
  Properties,
  PublishProperties,
  SubscribeProperties,
  UnsubscribeProperties,
  WillProperties,
} from "./properties.ts";
export * from "./reason_codes.ts";
