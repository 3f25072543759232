/**
 * What the session unit tests share: a handler that records the session's
 * outputs, and packets written as short strings for order assertions.
 *
 * @module
 */
import type {
  ConnackPacket,
  ConnackReturnCode,
  Packet,
  PublishPacket,
  QoS,
} from "../lib/codec/packet.ts";
import type { MqttError } from "../lib/errors.ts";
import type { SessionHandler, SessionOptions } from "../lib/session/types.ts";

/** How {@linkcode brief} writes packets. */
export interface BriefOptions {
  /** Append a PUBLISH's topic ("publish:3:q1:a/b"). Default true. */
  topics?: boolean;
  /** Write a SUBSCRIBE's filters and an UNSUBSCRIBE's ("subscribe:1:a/#@1,c@1"). Default false. */
  filters?: boolean;
}

/** Packets as short strings, e.g. "publish:3:q1:dup:a/b", "pubrel:2", "pingreq". */
export function brief(packets: Packet[], options: BriefOptions = {}): string[] {
  const { topics = true, filters = false } = options;
  return packets.map((p) => {
    switch (p.type) {
      case "publish":
        return `publish:${p.packetId ?? "-"}:q${p.qos}${p.dup ? ":dup" : ""}` +
          (topics ? `:${p.topic}` : "");
      case "subscribe":
        return filters
          ? `subscribe:${p.packetId}:${p.subscriptions.map((s) => `${s.filter}@${s.qos}`)}`
          : `subscribe:${p.packetId}`;
      case "unsubscribe":
        return filters ? `unsubscribe:${p.packetId}:${p.filters}` : `unsubscribe:${p.packetId}`;
      case "puback":
      case "pubrec":
      case "pubrel":
      case "pubcomp":
      case "suback":
      case "unsuback":
        return `${p.type}:${p.packetId}`;
      default:
        return p.type;
    }
  });
}

/** A SessionHandler that records everything the session hands out. */
export class Recorder implements SessionHandler {
  sent: Packet[] = [];
  delivered: PublishPacket[] = [];
  connacks: ConnackPacket[] = [];
  closes: (MqttError | undefined)[] = [];
  /** `filter:code` of each failed re-registration. */
  failed: string[] = [];
  errors: MqttError[] = [];
  onConnected?: (connack: ConnackPacket) => void;

  /** With `log`, each packet sent is also written there, as "send:<brief>". */
  constructor(readonly log?: string[]) {}

  send(packet: Packet): void {
    this.sent.push(packet);
    this.log?.push(`send:${brief([packet])[0]}`);
  }
  deliver(packet: PublishPacket): void {
    this.delivered.push(packet);
  }
  connected(connack: ConnackPacket): void {
    this.connacks.push(connack);
    this.onConnected?.(connack);
  }
  closed(error: MqttError | undefined): void {
    this.closes.push(error);
  }
  resubscribeFailed(filter: string, error: MqttError): void {
    this.failed.push(`${filter}:${error.code}`);
    this.errors.push(error);
  }
  /** Returns and clears the packets sent so far. */
  take(): Packet[] {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
}

/** Session options for tests: `overrides` on top of small, explicit values. */
export function sessionOptions(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return {
    clientId: "c1",
    clean: true,
    keepAlive: 10,
    maxInflight: 10,
    pingTimeout: 3000,
    connectTimeout: 5000,
    ...overrides,
  };
}

const enc = new TextEncoder();

/** An outgoing message; its payload is `payload` (default: the topic) as UTF-8. */
export function msg(topic: string, qos: QoS, payload: string = topic): {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
} {
  return { topic, payload: enc.encode(payload), qos, retain: false };
}

/** A CONNACK. */
export function connack(sessionPresent = false, returnCode: ConnackReturnCode = 0): ConnackPacket {
  return { type: "connack", sessionPresent, returnCode };
}
