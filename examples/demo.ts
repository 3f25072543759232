/**
 * The tour: subscribe with a wildcard, publish at QoS 0, 1 and 2, a retained
 * message reaching a late subscriber, and a Last Will fired by a client whose
 * connection drops. Prints each step and exits 0 (1 if a step fails).
 *
 * ```sh
 * deno task demo                                  # starts an embedded broker in-process
 * deno task demo --url mqtt://test.mosquitto.org  # uses that broker instead
 * ```
 *
 * @module
 */
import { Broker } from "../broker.ts";
import { connect, type Message, type QoS, type Transport } from "../mod.ts";

const STEP_TIMEOUT = 10_000;

function parseUrlFlag(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--url") return args[i + 1];
    if (args[i].startsWith("--url=")) return args[i].slice("--url=".length);
  }
  return undefined;
}

/** The next message of `messages`, or an error after STEP_TIMEOUT so the demo never hangs. */
async function next(messages: AsyncIterator<Message>, what: string): Promise<Message> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no ${what} within ${STEP_TIMEOUT} ms`)),
      STEP_TIMEOUT,
    );
  });
  try {
    const result = await Promise.race([messages.next(), timeout]);
    if (result.done) throw new Error(`subscription ended while waiting for ${what}`);
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP transport the demo can cut without DISCONNECT, as a crashed device would. */
function droppableTransport(url: URL): { open: () => Promise<Transport>; drop: () => void } {
  let conn: Deno.Conn | undefined;
  const close = () => {
    try {
      conn?.close();
    } catch {
      // already closed
    }
  };
  return {
    open: async () => {
      conn = await Deno.connect({
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        port: Number(url.port || 1883),
      });
      return { readable: conn.readable, writable: conn.writable, close };
    },
    drop: close,
  };
}

async function run(url: string): Promise<void> {
  const tag = crypto.randomUUID().slice(0, 8);
  const base = `demo-${tag}`;

  console.log(`1. connecting a subscriber to ${url}`);
  await using subscriber = await connect(url, { clientId: `${base}-sub` });
  const sensors = await subscriber.subscribe(`${base}/sensors/+/temp`, { qos: 2 });
  console.log(`   subscribed to ${sensors.filters[0]} (granted QoS ${sensors.granted[0]})`);
  const sensorMessages = sensors[Symbol.asyncIterator]();

  console.log("2. publishing at QoS 0, 1 and 2");
  await using publisher = await connect(url, { clientId: `${base}-pub` });
  for (const qos of [0, 1, 2] as QoS[]) {
    const topic = `${base}/sensors/${qos + 1}/temp`;
    await publisher.publish(topic, `${20 + qos}.5`, { qos });
    const msg = await next(sensorMessages, `the QoS ${qos} message`);
    console.log(`   sent QoS ${qos}, received ${msg.topic} = ${msg.text()} (QoS ${msg.qos})`);
  }

  console.log("3. a retained message reaching a late subscriber");
  const statusTopic = `${base}/status`;
  await publisher.publish(statusTopic, "online", { qos: 1, retain: true });
  {
    await using late = await connect(url, { clientId: `${base}-late` });
    const status = await late.subscribe(statusTopic, { qos: 1 });
    const msg = await next(status[Symbol.asyncIterator](), "the retained message");
    console.log(`   late subscriber got ${msg.topic} = ${msg.text()} (retain=${msg.retain})`);
    if (!msg.retain) throw new Error("the retained message arrived without the retain flag");
    await publisher.publish(statusTopic, new Uint8Array(), { qos: 1, retain: true }); // clear it
  }

  console.log("4. a Last Will fired by a dropped client");
  const willTopic = `${base}/will`;
  const wills = await subscriber.subscribe(willTopic, { qos: 1 });
  const link = droppableTransport(new URL(url));
  const device = await connect(url, {
    clientId: `${base}-device`,
    will: { topic: willTopic, payload: "device went offline", qos: 1 },
    reconnect: false,
    transport: link.open,
  });
  console.log("   device connected with a will; cutting its connection without DISCONNECT");
  link.drop();
  const will = await next(wills[Symbol.asyncIterator](), "the will message");
  console.log(`   will received on ${will.topic}: ${will.text()}`);
  await device.close();

  console.log("done: every step worked");
}

if (import.meta.main) {
  const given = parseUrlFlag(Deno.args);
  let broker: Broker | undefined;
  let url = given;
  try {
    if (url === undefined) {
      broker = new Broker();
      const { port } = await broker.listen({ port: 0 });
      url = `mqtt://127.0.0.1:${port}`;
      console.log(`started an embedded broker on ${url} (pass --url to use another broker)`);
    } else if (!url.startsWith("mqtt://")) {
      throw new Error("--url must be an mqtt:// URL (the will step drops a TCP connection)");
    }
    await run(url);
  } catch (err) {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    await broker?.close();
    Deno.exit(1);
  }
  await broker?.close();
}
