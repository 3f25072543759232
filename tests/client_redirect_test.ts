/**
 * MQTT 5.0 server redirection (section 4.11) against scripted 5.0 servers (no broker at hand
 * sends 0x9C or 0x9D): off by default, so a server cannot send the client's credentials
 * anywhere; with `followRedirects`, a CONNACK or DISCONNECT with 0x9C (use another server) or
 * 0x9D (server moved) and a Server Reference sends the client there, within a hop limit, never
 * from TLS to plain text, and the `connect` event says so.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type ConnectEventDetail,
  ConnectionRefusedError,
  decodePacket,
  encodePacket,
  type MqttClient,
  type Packet,
  type Transport,
} from "../mod.ts";
import { redirectHops, redirectOf, referenceUrl } from "../lib/client/redirect.ts";
import { parseBrokerUrl } from "../lib/client/url.ts";
import { ServerDisconnectError } from "../lib/errors.ts";
import { hasCode, within } from "./client_helpers.ts";

type Behaviour =
  | { accept: true }
  | { refuse: number; serverReference?: string };

/** The CONNECTs one scripted server received. */
interface Seen {
  connects: { username?: string; password?: string }[];
}

/**
 * Scripted 5.0 servers told apart by host name (the `transport` option receives the URL): each
 * accepts every CONNECT or refuses it with a reason code and a Server Reference, and the latest
 * accepted connection can be ended with a DISCONNECT.
 */
class Servers {
  readonly seen = new Map<string, Seen>();
  readonly #behaviour: Map<string, Behaviour>;
  #latest: { out: ReadableStreamDefaultController<Uint8Array>; end: () => void } | undefined;

  constructor(behaviour: Record<string, Behaviour>) {
    this.#behaviour = new Map(Object.entries(behaviour));
  }

  /** Hosts that received a CONNECT, in the order of their first one. */
  get contacted(): string[] {
    return [...this.seen.keys()];
  }

  open = (url: URL): Promise<Transport> => {
    const host = url.hostname;
    const behaviour = this.#behaviour.get(host);
    if (behaviour === undefined) return Promise.reject(new Error(`no server at ${host}`));
    let out!: ReadableStreamDefaultController<Uint8Array>;
    let open = true;
    const end = () => {
      if (open) out.close();
      open = false;
    };
    const readable = new ReadableStream<Uint8Array>({ start: (c) => void (out = c) });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (!open || chunk[0] !== 0x10) return;
        const connect = decodePacket(chunk, 0, chunk.length, { protocolVersion: 5 });
        assert.equal(connect.type, "connect");
        const seen = this.seen.get(host) ?? { connects: [] };
        this.seen.set(host, seen);
        seen.connects.push({
          username: connect.username,
          password: connect.password && new TextDecoder().decode(connect.password),
        });
        if ("accept" in behaviour) {
          this.#latest = { out, end };
          this.#send(out, { type: "connack", sessionPresent: false, reasonCode: 0 });
          return;
        }
        const properties = behaviour.serverReference === undefined
          ? undefined
          : { serverReference: behaviour.serverReference };
        this.#send(out, {
          type: "connack",
          sessionPresent: false,
          reasonCode: behaviour.refuse as 0x9c,
          properties,
        });
        end();
      },
      // The client is done writing (after its DISCONNECT): the server hangs up.
      close: end,
    });
    return Promise.resolve({ readable, writable, close: end });
  };

  #send(out: ReadableStreamDefaultController<Uint8Array>, packet: Packet): void {
    out.enqueue(encodePacket(packet, { protocolVersion: 5 }));
  }

  /** Ends the latest accepted connection with a DISCONNECT. */
  disconnect(reasonCode: number, serverReference?: string): void {
    const latest = this.#latest!;
    const properties = serverReference === undefined ? undefined : { serverReference };
    this.#send(latest.out, { type: "disconnect", reasonCode: reasonCode as 0x9c, properties });
    latest.end();
  }

  /** Drops the latest accepted connection without a packet. */
  drop(): void {
    this.#latest!.end();
  }
}

const OPTIONS = {
  protocolVersion: 5 as const,
  username: "alice",
  password: "S3CRET",
  reconnect: { minDelay: 1, maxDelay: 5 },
};

function nextConnect(client: MqttClient): Promise<ConnectEventDetail> {
  return new Promise((resolve) => {
    client.addEventListener("connect", (e) => resolve(e.detail), { once: true });
  });
}

Deno.test("redirect: off by default: a CONNACK 0x9C refusal names the reference, nobody else is contacted", async () => {
  const servers = new Servers({
    "a.invalid": { refuse: 0x9c, serverReference: "b.invalid" },
    "b.invalid": { accept: true },
  });
  const error = await connect("mqtt://a.invalid", { ...OPTIONS, transport: servers.open })
    .then(() => undefined, (e) => e);
  assert.ok(error instanceof ConnectionRefusedError, String(error));
  assert.equal(error.reasonCode, 0x9c);
  assert.equal(error.serverReference, "b.invalid");
  assert.match(error.message, /server reference: b\.invalid/);
  assert.deepEqual(servers.contacted, ["a.invalid"], "the credentials went nowhere else");
});

Deno.test("redirect: CONNACK 0x9C with followRedirects: the same CONNECT goes to the reference", async () => {
  const servers = new Servers({
    "a.invalid": { refuse: 0x9c, serverReference: "b.invalid:1884 c.invalid:1885" },
    "b.invalid": { accept: true },
    "c.invalid": { accept: true },
  });
  const client = await connect("mqtt://a.invalid:1883", {
    ...OPTIONS,
    followRedirects: true,
    transport: servers.open,
  });
  try {
    assert.equal(client.url, "mqtt://b.invalid:1884"); // the first reference is taken
    assert.deepEqual(servers.contacted, ["a.invalid", "b.invalid"]);
    assert.deepEqual(servers.seen.get("b.invalid")!.connects, [
      { username: "alice", password: "S3CRET" },
    ]);
  } finally {
    await client.close();
  }
});

Deno.test("redirect: DISCONNECT 0x9D server moved: the client goes there and stays there", async () => {
  const servers = new Servers({
    "a.invalid": { accept: true },
    "b.invalid": { accept: true },
  });
  const client = await connect("mqtt://a.invalid", {
    ...OPTIONS,
    followRedirects: true,
    transport: servers.open,
  });
  try {
    const moved = nextConnect(client);
    servers.disconnect(0x9d, "b.invalid:2883");
    const detail = await within(moved, "the connect event after the redirection");
    assert.deepEqual(detail, {
      sessionPresent: false,
      reconnect: true,
      url: "mqtt://b.invalid:2883",
      redirect: {
        from: "mqtt://a.invalid",
        to: "mqtt://b.invalid:2883",
        reasonCode: 0x9d,
        serverReference: "b.invalid:2883",
      },
    });
    // Moved for good: a later loss reconnects to the new server, not to the old one.
    const back = nextConnect(client);
    servers.drop();
    const again = await within(back, "the reconnect after a plain loss");
    assert.deepEqual(again, {
      sessionPresent: false,
      reconnect: true,
      url: "mqtt://b.invalid:2883",
    });
    assert.equal(servers.seen.get("a.invalid")!.connects.length, 1);
    assert.equal(servers.seen.get("b.invalid")!.connects.length, 2);
  } finally {
    await client.close();
  }
});

Deno.test("redirect: DISCONNECT 0x9C use another server: a detour until the next loss", async () => {
  const servers = new Servers({
    "a.invalid": { accept: true },
    "b.invalid": { accept: true },
  });
  const client = await connect("mqtt://a.invalid", {
    ...OPTIONS,
    followRedirects: 1,
    transport: servers.open,
  });
  try {
    const detour = nextConnect(client);
    servers.disconnect(0x9c, "b.invalid");
    const detail = await within(detour, "the connect event after the redirection");
    assert.equal(detail.url, "mqtt://b.invalid:1883");
    assert.equal(detail.redirect?.reasonCode, 0x9c);
    const back = nextConnect(client);
    servers.drop();
    const again = await within(back, "the reconnect after a plain loss");
    assert.equal(again.url, "mqtt://a.invalid");
    assert.equal(again.redirect, undefined);
  } finally {
    await client.close();
  }
});

Deno.test("redirect: at most followRedirects hops in a row; the last refusal is the error", async () => {
  const servers = new Servers({
    "a.invalid": { refuse: 0x9c, serverReference: "b.invalid" },
    "b.invalid": { refuse: 0x9d, serverReference: "c.invalid" },
    "c.invalid": { refuse: 0x9c, serverReference: "d.invalid" },
    "d.invalid": { accept: true },
  });
  const error = await connect("mqtt://a.invalid", {
    ...OPTIONS,
    followRedirects: 2,
    transport: servers.open,
  }).then(() => undefined, (e) => e);
  assert.ok(error instanceof ConnectionRefusedError, String(error));
  assert.equal(error.serverReference, "d.invalid");
  assert.deepEqual(servers.contacted, ["a.invalid", "b.invalid", "c.invalid"]);
});

Deno.test("redirect: never from TLS to plain text, nor to a reference that does not parse", async () => {
  for (
    const reference of ["mqtt://plain.invalid", "ws://plain.invalid/mqtt", "b:c:d plain.invalid"]
  ) {
    const servers = new Servers({
      "a.invalid": { refuse: 0x9c, serverReference: reference },
      "plain.invalid": { accept: true },
    });
    const error = await connect("mqtts://a.invalid", {
      ...OPTIONS,
      followRedirects: true,
      transport: servers.open,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof ConnectionRefusedError, `${reference}: ${error}`);
    assert.deepEqual(servers.contacted, ["a.invalid"], reference);
  }
});

Deno.test("redirect: followRedirects must be a boolean or a hop count", async () => {
  for (const bad of [0, -1, 1.5, 101, "yes", null]) {
    await assert.rejects(
      connect("mqtt://a.invalid", { followRedirects: bad as unknown as number }),
      hasCode("INVALID_OPTION", /followRedirects/),
    );
  }
  assert.equal(redirectHops(false), 0);
  assert.equal(redirectHops(true), 3);
  assert.equal(redirectHops(7), 7);
});

Deno.test("redirect: Server Reference forms (section 4.11's recommended host[:port], or a URL)", () => {
  const href = (reference: string, from: string) =>
    referenceUrl(reference, parseBrokerUrl(from))?.href.href;
  assert.equal(href("b.example", "mqtt://a:1884"), "mqtt://b.example:1883"); // the scheme's port
  assert.equal(href("b.example:8884", "mqtts://a"), "mqtts://b.example:8884");
  assert.equal(href("10.10.151.22:8883 [fe80::1]:1883", "mqtt://a"), "mqtt://10.10.151.22:8883");
  assert.equal(href("[fe80::1]:1883", "mqtt://a"), "mqtt://[fe80::1]:1883");
  assert.equal(href("b.example:8443", "wss://a/ws?x=1"), "wss://b.example:8443/ws?x=1");
  assert.equal(href("wss://b.example/mqtt", "mqtt://a"), "wss://b.example/mqtt"); // 443 is implied
  assert.equal(href("mqtt://b.example", "wss://a"), undefined);
  assert.equal(href("http://b.example", "mqtt://a"), undefined);
  assert.equal(href("b.example:99999", "mqtt://a"), undefined);
  assert.equal(href("", "mqtt://a"), undefined);
  const disconnect = new ServerDisconnectError(0x9d, { serverReference: "x" });
  assert.deepEqual(redirectOf(disconnect), { reasonCode: 0x9d, serverReference: "x" });
  assert.equal(redirectOf(new ServerDisconnectError(0x8b, { serverReference: "x" })), undefined);
  assert.equal(redirectOf(new ServerDisconnectError(0x9c)), undefined);
  assert.equal(
    redirectOf(new ConnectionRefusedError(0, { reasonCode: 0x9c, serverReference: " " })),
    undefined,
  );
});
