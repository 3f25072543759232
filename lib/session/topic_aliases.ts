/**
 * MQTT 5.0 Topic Aliases (section 3.3.2.3.4), both directions, without I/O.
 *
 * An alias names a topic for the life of one network connection only
 * (MQTT-3.3.2-7): each connection makes a new {@linkcode OutgoingTopicAliases}
 * and {@linkcode IncomingTopicAliases}. Aliases are applied to a copy of the
 * PUBLISH as it is written, never to the message kept for resending or stored,
 * so a resent or queued message carries its full topic on the next connection.
 *
 * @module
 */
import type { PublishPacket } from "../codec/packet.ts";
import { ProtocolError } from "../errors.ts";

/** Disconnect reason code 0x82 Protocol Error: an alias used before any topic was set for it. */
export const REASON_PROTOCOL_ERROR = 0x82;
/** Disconnect reason code 0x94 Topic Alias invalid: 0 or above the maximum we allow. */
export const REASON_TOPIC_ALIAS_INVALID = 0x94;

/**
 * The Topic Aliases we send on one connection, assigned automatically to
 * every topic up to the server's Topic Alias Maximum; when all are taken,
 * the least recently used alias is given to the new topic.
 *
 * The first PUBLISH of a topic carries the topic and its new alias (which
 * sets the mapping at the server); later ones carry the alias and an empty
 * topic. With a maximum of 0 (the server's default, MQTT-3.2.2-18) nothing
 * changes. Aliases are never above the maximum (MQTT-3.2.2-17, MQTT-3.3.2-9)
 * and never 0 (MQTT-3.3.2-8).
 *
 * @example
 * ```ts
 * import { OutgoingTopicAliases } from "./topic_aliases.ts";
 * const aliases = new OutgoingTopicAliases(2);
 * const p = { type: "publish", topic: "a/b", payload: new Uint8Array(), qos: 0, retain: false, dup: false } as const;
 * console.log(aliases.apply(p).properties?.topicAlias, aliases.apply(p).topic); // 1 ""
 * ```
 */
export class OutgoingTopicAliases {
  /** The server's Topic Alias Maximum on this connection. */
  readonly maximum: number;
  /** Topic → alias; Map order is use order, least recently used first. */
  readonly #aliases = new Map<string, number>();

  /** Aliases for a connection whose CONNACK gave `maximum` (0..65535; absent is 0). */
  constructor(maximum: number) {
    this.maximum = Number.isInteger(maximum) && maximum > 0 ? Math.min(maximum, 0xffff) : 0;
  }

  /** Topics that currently have an alias. */
  get size(): number {
    return this.#aliases.size;
  }

  /**
   * The PUBLISH to write for `packet`: `packet` itself when no alias applies,
   * else a copy with the Topic Alias property (and an empty topic when the
   * server already knows the alias). `packet` is never changed. A PUBLISH
   * that already has a Topic Alias is returned as it is.
   */
  apply(packet: PublishPacket): PublishPacket {
    const max = this.maximum;
    const topic = packet.topic;
    if (max === 0 || topic === "" || packet.properties?.topicAlias !== undefined) return packet;
    const aliases = this.#aliases;
    const known = aliases.get(topic);
    if (known !== undefined) {
      // Most recently used moves to the end.
      aliases.delete(topic);
      aliases.set(topic, known);
      return { ...packet, topic: "", properties: { ...packet.properties, topicAlias: known } };
    }
    let alias: number;
    if (aliases.size < max) {
      alias = aliases.size + 1; // 1..max: never 0, never above the maximum
    } else {
      const [oldest, reused] = aliases.entries().next().value!;
      aliases.delete(oldest);
      alias = reused;
    }
    aliases.set(topic, alias);
    // A new or reassigned mapping: the full topic with the alias (section 3.3.2.3.4).
    return { ...packet, properties: { ...packet.properties, topicAlias: alias } };
  }
}

/**
 * The Topic Aliases the server sends us on one connection, resolved as
 * section 3.3.2.3.4 says: a non-empty topic with an alias sets (or replaces)
 * the mapping; an empty topic with a known alias takes its topic.
 *
 * Errors (thrown as {@linkcode ProtocolError}, the connection must end with
 * DISCONNECT and the reason in `reasonCode` of {@linkcode aliasReasonCode}):
 * an alias of 0 or above our Topic Alias Maximum is `TOPIC_ALIAS_INVALID`
 * (0x94); an empty topic with an alias not yet mapped is
 * `UNKNOWN_TOPIC_ALIAS` (0x82 Protocol Error). Every alias from 1 to the
 * maximum is accepted (MQTT-3.3.2-10).
 *
 * @example
 * ```ts
 * import { IncomingTopicAliases } from "./topic_aliases.ts";
 * const aliases = new IncomingTopicAliases(10);
 * const base = { type: "publish", payload: new Uint8Array(), qos: 0, retain: false, dup: false } as const;
 * aliases.resolve({ ...base, topic: "a/b", properties: { topicAlias: 3 } });
 * console.log(aliases.resolve({ ...base, topic: "", properties: { topicAlias: 3 } }).topic); // "a/b"
 * ```
 */
export class IncomingTopicAliases {
  /** The Topic Alias Maximum we sent in CONNECT. */
  readonly maximum: number;
  readonly #topics = new Map<number, string>();

  /** Aliases for a connection whose CONNECT said `maximum` (0: none accepted). */
  constructor(maximum: number) {
    this.maximum = maximum;
  }

  /**
   * The PUBLISH with its topic resolved: `packet` itself when it has no
   * alias or carries its topic, else a copy with the mapped topic.
   */
  resolve(packet: PublishPacket): PublishPacket {
    const alias = packet.properties?.topicAlias;
    if (alias === undefined) return packet;
    if (!(alias >= 1 && alias <= this.maximum)) {
      throw new ProtocolError(
        "TOPIC_ALIAS_INVALID",
        `the server sent Topic Alias ${alias}, above the Topic Alias Maximum ${this.maximum} ` +
          "we sent in CONNECT (MQTT-3.1.2-26, MQTT-3.3.2-11; reason 0x94)",
        "publish",
      );
    }
    if (packet.topic !== "") {
      this.#topics.set(alias, packet.topic);
      return packet;
    }
    const topic = this.#topics.get(alias);
    if (topic === undefined) {
      throw new ProtocolError(
        "UNKNOWN_TOPIC_ALIAS",
        `the server sent Topic Alias ${alias} with an empty topic before mapping it ` +
          "(section 3.3.2.3.4; reason 0x82)",
        "publish",
      );
    }
    return { ...packet, topic };
  }
}

/**
 * The DISCONNECT reason code for an error thrown by
 * {@linkcode IncomingTopicAliases.resolve}; undefined for any other error.
 *
 * @example
 * ```ts
 * import { aliasReasonCode, IncomingTopicAliases } from "./topic_aliases.ts";
 * try {
 *   new IncomingTopicAliases(0).resolve({
 *     type: "publish", topic: "t", payload: new Uint8Array(), qos: 0, retain: false, dup: false,
 *     properties: { topicAlias: 1 },
 *   });
 * } catch (err) {
 *   console.log(aliasReasonCode(err)); // 148 (0x94)
 * }
 * ```
 */
export function aliasReasonCode(error: unknown): number | undefined {
  if (!(error instanceof ProtocolError)) return undefined;
  if (error.code === "TOPIC_ALIAS_INVALID") return REASON_TOPIC_ALIAS_INVALID;
  if (error.code === "UNKNOWN_TOPIC_ALIAS") return REASON_PROTOCOL_ERROR;
  return undefined;
}

/**
 * Both directions' Topic Alias tables of one network connection: made at
 * CONNECT with the Topic Alias Maximum we sent, told the server's at CONNACK.
 * A new connection makes a new one, so nothing carries over (MQTT-3.3.2-7).
 *
 * @example
 * ```ts
 * import { ConnectionTopicAliases } from "./topic_aliases.ts";
 * const aliases = new ConnectionTopicAliases(0);
 * aliases.connected(5);
 * const p = { type: "publish", topic: "a", payload: new Uint8Array(), qos: 0, retain: false, dup: false } as const;
 * console.log(aliases.outgoing(p).properties?.topicAlias); // 1
 * ```
 */
export class ConnectionTopicAliases {
  #outgoing: OutgoingTopicAliases = new OutgoingTopicAliases(0);
  readonly #incoming: IncomingTopicAliases;

  /** Tables for a connection whose CONNECT said Topic Alias Maximum `ours` (0 or absent: none). */
  constructor(ours: number) {
    this.#incoming = new IncomingTopicAliases(ours);
  }

  /** CONNACK accepted with the server's Topic Alias Maximum (0 or absent: none). */
  connected(servers: number): void {
    this.#outgoing = new OutgoingTopicAliases(servers);
  }

  /** See {@linkcode OutgoingTopicAliases.apply}. */
  outgoing(packet: PublishPacket): PublishPacket {
    return this.#outgoing.apply(packet);
  }

  /** See {@linkcode IncomingTopicAliases.resolve}. */
  incoming(packet: PublishPacket): PublishPacket {
    return this.#incoming.resolve(packet);
  }
}
