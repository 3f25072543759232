/**
 * `sub -F`: the output format language of `mosquitto_sub` 2.0.
 *
 * - `%t` topic, `%p` payload, `%l` payload length, `%q` QoS, `%r` retain (0/1),
 *   `%m` packet id (0 for QoS 0), `%x`/`%X` payload in lower/upper case hex,
 *   `%j` the message as JSON, `%J` the same with a JSON payload embedded,
 *   `%I` ISO 8601 local time, `%U` Unix time with nanoseconds, `%%` a `%`;
 * - MQTT 5.0 properties, empty when the message has none: `%A` topic alias, `%C`
 *   content type, `%D` correlation data (its bytes), `%E` message expiry interval,
 *   `%F` payload format indicator, `%P` user properties as `key:value` pairs
 *   separated by spaces (never padded, as in mosquitto_sub), `%R` response
 *   topic, `%S` subscription identifier.
 * - Flags, width and precision as in printf: `%-10t`, `%05l`, `%.3p`.
 * - `@` and a `strftime` letter print the local time: `@Y-@m-@d @H:@M:@S`,
 *   `@N` nanoseconds, `@@` an `@`.
 * - `\n \t \r \v \a \e \0 \\` escapes.
 *
 * @module
 */

import type { PublishProperties } from "../codec/properties.ts";

/** What a format needs of a message. */
export interface FormatMessage {
  /** Topic name. */
  topic: string;
  /** Payload bytes. */
  payload: Uint8Array;
  /** Delivery QoS. */
  qos: number;
  /** Retain flag. */
  retain: boolean;
  /** Packet identifier; undefined for QoS 0. */
  packetId?: number;
  /** MQTT 5.0 PUBLISH properties, if any. */
  properties?: PublishProperties;
}

/** A piece of a parsed format. */
type Piece =
  | { kind: "text"; text: string }
  | {
    kind: "field";
    conversion: string;
    left: boolean;
    zero: boolean;
    width: number;
    precision?: number;
  }
  | { kind: "time"; conversion: string };

const FIELDS = new Set("AtplqrmxXjJIUCDEFPRS%");
const ESCAPES: Record<string, string> = {
  "\\": "\\",
  "0": "\0",
  a: "\x07",
  e: "\x1b",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
};

/** A bad `-F` format; the CLI reports it as a usage error. */
export class FormatError extends Error {
  /** Creates a format error. */
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}

/** A parsed `-F` format, ready to print messages. */
export interface Format {
  /**
   * The message printed as the format says. `warn` hears of a `%J` payload
   * that is not JSON (the line is still printed, without that field).
   */
  print(message: FormatMessage, now: Date, warn: (line: string) => void): Uint8Array;
}

/**
 * Parses a `mosquitto_sub -F` format; throws {@linkcode FormatError} on an
 * unknown `%` or `@` conversion, with mosquitto's wording.
 *
 * @example
 * ```ts
 * import { parseFormat } from "./format.ts";
 * const format = parseFormat("%t: %p (%l bytes)");
 * const msg = { topic: "a/b", payload: new TextEncoder().encode("hi"), qos: 0, retain: false };
 * console.log(new TextDecoder().decode(format.print(msg, new Date(), console.error))); // a/b: hi (2 bytes)
 * ```
 */
export function parseFormat(format: string): Format {
  const pieces: Piece[] = [];
  let text = "";
  const flush = () => {
    if (text !== "") pieces.push({ kind: "text", text });
    text = "";
  };
  for (let i = 0; i < format.length; i++) {
    const c = format[i];
    if (c === "\\" && i + 1 < format.length) {
      const escaped = ESCAPES[format[i + 1]];
      if (escaped === undefined) {
        throw new FormatError(`Invalid escape specifier '${format[i + 1]}'.`);
      }
      text += escaped;
      i++;
    } else if (c === "@" && i + 1 < format.length) {
      const conversion = format[++i];
      flush();
      pieces.push({ kind: "time", conversion });
    } else if (c === "%") {
      if (i + 1 === format.length) throw new FormatError("Incomplete format specifier.");
      const spec = /^([-0]*)(\d*)(?:\.(\d+))?(.)?/.exec(format.slice(i + 1))!;
      const conversion = spec[4];
      if (conversion === undefined || !FIELDS.has(conversion)) {
        throw new FormatError(`Invalid format specifier '${conversion ?? ""}'.`);
      }
      i += spec[0].length;
      if (conversion === "%") {
        text += "%";
        continue;
      }
      flush();
      pieces.push({
        kind: "field",
        conversion,
        left: spec[1].includes("-"),
        zero: spec[1].includes("0"),
        width: spec[2] === "" ? 0 : Number(spec[2]),
        precision: spec[3] === undefined ? undefined : Number(spec[3]),
      });
    } else {
      text += c;
    }
  }
  flush();
  return {
    print(message, now, warn) {
      let out = "";
      const binary: Uint8Array[] = [];
      const emit = (part: string | Uint8Array) => {
        if (typeof part === "string") {
          out += part;
          return;
        }
        binary.push(encoder.encode(out), part);
        out = "";
      };
      for (const piece of pieces) {
        if (piece.kind === "text") emit(piece.text);
        else if (piece.kind === "time") emit(strftime(piece.conversion, now));
        else emit(field(piece, message, now, warn));
      }
      binary.push(encoder.encode(out));
      return concat(binary);
    },
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The parts joined into one array.
 *
 * @example
 * ```ts
 * import { concat } from "./format.ts";
 * console.log(concat([new Uint8Array([1]), new Uint8Array([2, 3])])); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const all = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

function pad(value: string, piece: { left: boolean; zero: boolean; width: number }): string {
  if (value.length >= piece.width) return value;
  if (piece.left) return value.padEnd(piece.width);
  return value.padStart(piece.width, piece.zero && /^\d+$/.test(value) ? "0" : " ");
}

function field(
  piece: Extract<Piece, { kind: "field" }>,
  message: FormatMessage,
  now: Date,
  warn: (line: string) => void,
): string | Uint8Array {
  const { payload } = message;
  let value: string;
  switch (piece.conversion) {
    case "t":
      value = message.topic;
      break;
    case "p": {
      // The payload goes out as bytes, as mosquitto writes it: padded by its byte length,
      // never cut (mosquitto ignores a precision here).
      if (payload.length >= piece.width) return payload;
      const fill = encoder.encode(" ".repeat(piece.width - payload.length));
      return piece.left ? concat([payload, fill]) : concat([fill, payload]);
    }
    case "l":
      value = String(payload.length);
      break;
    case "q":
      value = String(message.qos);
      break;
    case "r":
      value = message.retain ? "1" : "0";
      break;
    case "m":
      value = String(message.packetId ?? 0);
      break;
    case "x":
    case "X": {
      value = Array.from(payload, (b) => b.toString(16).padStart(2, "0")).join("");
      if (piece.conversion === "X") value = value.toUpperCase();
      break;
    }
    case "I":
      value = isoTime(now, false);
      break;
    case "U": {
      const nanos = String(now.getTime() % 1000 * 1_000_000).padStart(9, "0");
      value = `${Math.floor(now.getTime() / 1000)}.${nanos}`;
      break;
    }
    case "j":
    case "J":
      value = json(message, now, piece.conversion === "J", warn);
      break;
    case "D": {
      const data = message.properties?.correlationData;
      if (data === undefined) value = "";
      else return data; // binary, written as it is (mosquitto_sub does the same)
      break;
    }
    case "P": {
      const pairs = message.properties?.userProperties ?? [];
      return encoder.encode(pairs.map(([key, v]) => `${key}:${v}`).join(" "));
    }
    default:
      value = property(piece.conversion, message.properties);
  }
  if (piece.precision !== undefined) value = value.slice(0, piece.precision);
  return pad(value, piece);
}

/** A 5.0 property conversion's text: empty when the message does not carry it. */
function property(conversion: string, properties: PublishProperties | undefined): string {
  const value = conversion === "A"
    ? properties?.topicAlias
    : conversion === "C"
    ? properties?.contentType
    : conversion === "E"
    ? properties?.messageExpiryInterval
    : conversion === "F"
    ? properties?.payloadFormatIndicator
    : conversion === "R"
    ? properties?.responseTopic
    : conversion === "S"
    ? properties?.subscriptionIdentifiers?.[0]
    : undefined;
  return value === undefined ? "" : String(value);
}

function json(
  message: FormatMessage,
  now: Date,
  embed: boolean,
  warn: (line: string) => void,
): string {
  const text = decoder.decode(message.payload);
  let payload = JSON.stringify(text);
  if (embed) {
    try {
      payload = JSON.stringify(JSON.parse(text));
    } catch {
      warn(`Error: Message payload is not valid JSON on topic ${message.topic}.`);
      return "";
    }
  }
  return `{"tst":${JSON.stringify(isoTime(now, true))},"topic":${JSON.stringify(message.topic)},` +
    `"qos":${message.qos},"retain":${message.retain ? 1 : 0},` +
    `"payloadlen":${message.payload.length},"payload":${payload}}`;
}

const two = (n: number) => String(n).padStart(2, "0");

function offset(now: Date): string {
  const minutes = -now.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  return `${sign}${two(Math.floor(Math.abs(minutes) / 60))}${two(Math.abs(minutes) % 60)}`;
}

/** mosquitto's `%I` (`2026-12-01T21:37:02+0000`) and `%j` timestamps (`…:02.545360Z+0000`). */
function isoTime(now: Date, micros: boolean): string {
  const date = `${now.getFullYear()}-${two(now.getMonth() + 1)}-${two(now.getDate())}`;
  const time = `${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}`;
  const fraction = micros ? `.${String(now.getMilliseconds() * 1000).padStart(6, "0")}Z` : "";
  return `${date}T${time}${fraction}${offset(now)}`;
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

function strftime(conversion: string, now: Date): string {
  const hours12 = now.getHours() % 12 === 0 ? 12 : now.getHours() % 12;
  const start = new Date(now.getFullYear(), 0, 1);
  const dayOfYear = Math.floor((now.getTime() - start.getTime()) / 86_400_000) + 1;
  switch (conversion) {
    case "a":
      return DAYS[now.getDay()].slice(0, 3);
    case "A":
      return DAYS[now.getDay()];
    case "b":
      return MONTHS[now.getMonth()].slice(0, 3);
    case "B":
      return MONTHS[now.getMonth()];
    case "c":
      return `${strftime("a", now)} ${strftime("b", now)} ${String(now.getDate()).padStart(2)} ${
        strftime("T", now)
      } ${now.getFullYear()}`;
    case "d":
      return two(now.getDate());
    case "D":
      return `${two(now.getMonth() + 1)}/${two(now.getDate())}/${two(now.getFullYear() % 100)}`;
    case "e":
      return String(now.getDate()).padStart(2);
    case "F":
      return `${now.getFullYear()}-${two(now.getMonth() + 1)}-${two(now.getDate())}`;
    case "H":
      return two(now.getHours());
    case "I":
      return two(hours12);
    case "j":
      return String(dayOfYear).padStart(3, "0");
    case "k":
      return String(now.getHours()).padStart(2);
    case "l":
      return String(hours12).padStart(2);
    case "m":
      return two(now.getMonth() + 1);
    case "M":
      return two(now.getMinutes());
    case "n":
      return "\n";
    case "N":
      return String(now.getMilliseconds() * 1_000_000).padStart(9, "0");
    case "p":
      return now.getHours() < 12 ? "AM" : "PM";
    case "s":
      return String(Math.floor(now.getTime() / 1000));
    case "S":
      return two(now.getSeconds());
    case "T":
      return `${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}`;
    case "u":
      return String(now.getDay() === 0 ? 7 : now.getDay());
    case "y":
      return two(now.getFullYear() % 100);
    case "Y":
      return String(now.getFullYear());
    case "z":
      return offset(now);
    case "Z":
      return now.toLocaleTimeString("en-US", { timeZoneName: "short" }).split(" ").pop() ?? "";
    case "@":
      return "@";
    default:
      return `%${conversion}`; // what strftime does with a conversion it does not know
  }
}
