/**
 * Failover and the give-up rule for a publish the server keeps dropping the connection after
 * (`PUBLISH_REFUSED` after three drops in a row): during a cluster failover the nodes may drop
 * the client again and again before any of them acknowledges (NATS 2.9 does while its JetStream
 * elects leaders: `tests/cluster_nats_test.ts`), which must not cost a message; a publish every
 * server drops us for is still given up. Scripted servers, told apart by host name.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import type { Transport } from "../lib/transports/transport.ts";
import { hasCode, within } from "./client_helpers.ts";

/** CONNACK with the session present flag (section 3.2.2.2): the servers share the session. */
const CONNACK_SESSION_PRESENT = new Uint8Array([0x20, 0x02, 0x01, 0x00]);

/**
 * MQTT 3.1.1 servers that accept every CONNECT and drop the connection on the first PUBLISH of
 * the first `drops` connections (all servers counted together); later connections answer a
 * QoS 1 PUBLISH with PUBACK.
 */
function droppingServers(drops: number) {
  const hosts: string[] = [];
  let connections = 0;
  const open = (url: URL): Promise<Transport> => {
    hosts.push(url.hostname);
    const drop = connections++ < drops;
    let out!: ReadableStreamDefaultController<Uint8Array>;
    let open = true;
    const end = () => {
      if (open) out.close();
      open = false;
    };
    const readable = new ReadableStream<Uint8Array>({ start: (c) => void (out = c) });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (!open) return;
        if (chunk[0] === 0x10) return void out.enqueue(CONNACK_SESSION_PRESENT);
        if ((chunk[0] & 0xf0) !== 0x30) return; // not a PUBLISH
        if (drop) return end();
        // PUBACK with the PUBLISH's packet id: after the topic (2-byte length + name), one-byte
        // Remaining Length here (small test packets).
        const topicLength = (chunk[2] << 8) | chunk[3];
        const id = chunk.subarray(4 + topicLength, 6 + topicLength);
        out.enqueue(new Uint8Array([0x40, 0x02, id[0], id[1]]));
      },
      // The client is done writing (after its DISCONNECT): the server hangs up.
      close: end,
    });
    return Promise.resolve({ readable, writable, close: end });
  };
  return { open, hosts };
}

const OPTIONS = { clean: false, clientId: "strikes", reconnect: { minDelay: 1, maxDelay: 5 } };

Deno.test("failover strikes: three drops while moving between servers do not give a publish up", async () => {
  const servers = droppingServers(3);
  const client = await connect(["mqtt://a.invalid", "mqtt://b.invalid"], {
    ...OPTIONS,
    transport: servers.open,
  });
  try {
    await within(client.publish("t", "kept", { qos: 1 }), "the publish across the drops");
    assert.deepEqual(servers.hosts, ["a.invalid", "b.invalid", "a.invalid", "b.invalid"]);
  } finally {
    await client.close();
  }
});

Deno.test("failover strikes: a publish every server drops us for is given up after three rounds", async () => {
  const servers = droppingServers(Infinity);
  const client = await connect(["mqtt://a.invalid", "mqtt://b.invalid"], {
    ...OPTIONS,
    transport: servers.open,
  });
  try {
    await within(
      assert.rejects(client.publish("t", "poison", { qos: 1 }), hasCode("PUBLISH_REFUSED")),
      "the refusal",
    );
    // One CONNECT to start, then one per drop but the last: 3 strikes per server, 2 servers.
    assert.equal(servers.hosts.length, 6);
  } finally {
    await client.close();
  }
});

Deno.test("failover strikes: with one server, three drops in a row still give a publish up", async () => {
  const servers = droppingServers(Infinity);
  const client = await connect("mqtt://a.invalid", { ...OPTIONS, transport: servers.open });
  try {
    await within(
      assert.rejects(client.publish("t", "poison", { qos: 1 }), hasCode("PUBLISH_REFUSED")),
      "the refusal",
    );
    assert.equal(servers.hosts.length, 3);
  } finally {
    await client.close();
  }
});
