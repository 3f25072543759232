/**
 * Test certificates made with `openssl` at test time: X.509 v3 with the extensions rustls (behind
 * `Deno.connectTls`) insists on; v1 certificates or certificates without basicConstraints,
 * keyUsage and subjectAltName are rejected by it.
 *
 * @module
 */

/** A certificate and its private key, as PEM text and as files. */
export interface CertPair {
  /** The certificate, PEM. */
  cert: string;
  /** The private key (PKCS#8), PEM. */
  key: string;
  /** Path of the certificate file. */
  certFile: string;
  /** Path of the key file. */
  keyFile: string;
}

/** Everything {@linkcode makeCerts} writes. */
export interface Certs {
  /** The CA that signs `server`, `client` and `wrongHost`. */
  ca: CertPair;
  /** Server certificate for `localhost` (SAN DNS:localhost, IP:127.0.0.1, IP:::1). */
  server: CertPair;
  /** Client certificate for mutual TLS (CN `test-client`), signed by `ca`. */
  client: CertPair;
  /** A second CA, unrelated to `ca`: trusting only it must make the handshake fail. */
  wrongCa: CertPair;
  /** Server certificate signed by `ca` but only for `wrong.example` (no localhost, no IP). */
  wrongHost: CertPair;
  /** Client certificate signed by `wrongCa`: a broker trusting `ca` must reject it. */
  wrongClient: CertPair;
  /** The directory holding the files. */
  dir: string;
}

const CA_EXT = `[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

function leafExt(usage: "serverAuth" | "clientAuth", san?: string): string {
  return `[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = ${usage}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
${san ? `subjectAltName = ${san}\n` : ""}`;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`openssl ${args.join(" ")} failed (${out.code}): ${err}`);
  }
}

function serial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // a positive serial number
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function newKey(name: string, dir: string): Promise<void> {
  // P-256 keys take milliseconds to make, RSA keys far longer; rustls and Mosquitto accept both.
  await openssl([
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    `${name}.key`,
  ], dir);
}

async function makeCa(name: string, cn: string, dir: string): Promise<void> {
  await newKey(name, dir);
  await Deno.writeTextFile(`${dir}/${name}.ext`, CA_EXT);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    `${name}.key`,
    "-subj",
    `/CN=${cn}`,
    "-days",
    "3650",
    "-set_serial",
    serial(),
    "-config",
    `${name}.ext`,
    "-extensions",
    "ext",
    "-out",
    `${name}.pem`,
  ], dir);
}

async function makeLeaf(
  name: string,
  cn: string,
  ca: string,
  ext: string,
  dir: string,
): Promise<void> {
  await newKey(name, dir);
  await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
  await openssl(
    ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`],
    dir,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-set_serial",
    serial(),
    "-days",
    "3650",
    "-extfile",
    `${name}.ext`,
    "-extensions",
    "ext",
    "-out",
    `${name}.pem`,
  ], dir);
}

async function pair(name: string, dir: string): Promise<CertPair> {
  const certFile = `${dir}/${name}.pem`;
  const keyFile = `${dir}/${name}.key`;
  // Readable by all: Mosquitto started as root may run as user `mosquitto` (see mosquitto.ts).
  await Deno.chmod(certFile, 0o644);
  await Deno.chmod(keyFile, 0o644);
  return {
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
    certFile,
    keyFile,
  };
}

/**
 * Writes a CA, a server certificate for localhost, a client certificate, a second unrelated CA,
 * a server certificate for a wrong host and a client certificate from the wrong CA into `dir`
 * (which must exist), using `openssl`. All certificates are X.509 v3 with basicConstraints,
 * keyUsage, extendedKeyUsage, subjectKeyIdentifier and authorityKeyIdentifier; keys are P-256.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * const certs = await makeCerts(dir);
 * const conn = await Deno.connectTls({ hostname: "localhost", port: 8883, caCerts: [certs.ca.cert] });
 * ```
 */
export async function makeCerts(dir: string): Promise<Certs> {
  await Promise.all([
    makeCa("ca", "MQTT Test CA", dir),
    makeCa("wrong-ca", "Unrelated Test CA", dir),
  ]);
  await Promise.all([
    makeLeaf(
      "server",
      "localhost",
      "ca",
      leafExt("serverAuth", "DNS:localhost, IP:127.0.0.1, IP:::1"),
      dir,
    ),
    makeLeaf("client", "test-client", "ca", leafExt("clientAuth"), dir),
    makeLeaf("wrong-host", "wrong.example", "ca", leafExt("serverAuth", "DNS:wrong.example"), dir),
    makeLeaf("wrong-client", "wrong-client", "wrong-ca", leafExt("clientAuth"), dir),
  ]);
  return {
    ca: await pair("ca", dir),
    server: await pair("server", dir),
    client: await pair("client", dir),
    wrongCa: await pair("wrong-ca", dir),
    wrongHost: await pair("wrong-host", dir),
    wrongClient: await pair("wrong-client", dir),
    dir,
  };
}

let shared: Promise<Certs> | undefined;

/**
 * One {@linkcode makeCerts} result per process, made on first use in a temp directory that is
 * removed when the process exits. Saves the second or so `openssl` takes for every broker.
 *
 * @example
 * ```ts
 * const { ca } = await sharedCerts();
 * ```
 */
export function sharedCerts(): Promise<Certs> {
  shared ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-test-certs-" });
    await Deno.chmod(dir, 0o755);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // already gone
      }
    });
    return await makeCerts(dir);
  })();
  return shared;
}

/**
 * Makes the global `WebSocket` trust `caCert` until the returned function is called: the
 * web-standard WebSocket takes no TLS settings, so Deno's non-standard `client` option is used.
 *
 * @example
 * ```ts ignore
 * const untrust = trustForWebSocket(certs.ca.cert);
 * try {
 *   // connect to a wss:// URL served with a certificate signed by certs.ca
 * } finally {
 *   untrust();
 * }
 * ```
 */
export function trustForWebSocket(caCert: string): () => void {
  const http = Deno.createHttpClient({ caCerts: [caCert] });
  const Native = globalThis.WebSocket;
  class TrustingWebSocket extends Native {
    constructor(url: string | URL, protocols?: string | string[] | WebSocketOptions) {
      super(url, { protocols: protocols as string | string[] | undefined, client: http });
    }
  }
  globalThis.WebSocket = TrustingWebSocket;
  return () => {
    globalThis.WebSocket = Native;
    http.close();
  };
}
