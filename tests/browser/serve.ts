/**
 * The browser check's web server: serves the project's TypeScript modules to the browser as
 * JavaScript, types stripped file by file (no bundler, works offline), an optional bundle, the
 * HTML pages, and collects the results the pages post back.
 *
 * @module
 */
import { stripTypeScriptTypes } from "node:module";

/** A result a page posted to `/result`, parsed as JSON. */
export type PostedResult = Record<string, unknown>;

/** The server, from {@linkcode startPageServer}. */
export interface PageServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  /** Every path the browser asked for, in order. */
  readonly requested: readonly string[];
  /** Resolves with the next posted result (queued if one arrived before the call). */
  nextResult(): Promise<PostedResult>;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Options of {@linkcode startPageServer}. */
export interface PageServerOptions {
  /** Project root: `.ts` files below it are served type-stripped. */
  root: URL;
  /** JavaScript served as `/bundle.js`, if any. */
  bundle?: string;
  /**
   * Answer to each posted result, in order: the URL the page goes to next (the page follows
   * it), or `""` to stay.
   */
  nextPages?: string[];
}

const JS = "text/javascript; charset=utf-8";

/** An HTML page that runs `script` as a module and reports load errors to `/result`. */
function page(variant: string, script: string): string {
  // A classic script catches what the module cannot report itself: a module that fails to
  // load, parse or link never runs.
  return `<!doctype html>
<meta charset="utf-8">
<title>mqtt browser check: ${variant}</title>
<script>
  const report = (error) => fetch("/result", {
    method: "POST",
    body: JSON.stringify({ variant: ${JSON.stringify(variant)}, error: String(error) }),
  });
  addEventListener("error", (e) => report("page error: " + (e.message || e.type)));
  addEventListener("unhandledrejection", (e) => report("unhandled rejection: " + e.reason));
</script>
<script type="module" src="${script}" onerror="report('cannot load ${script}')"></script>
`;
}

/**
 * Starts the page server on a free 127.0.0.1 port.
 *
 * Routes: `/modules.html` and `/bundle.html` (pages; their query is passed on to the script),
 * `/bundle.js`, any `/<path>.ts` below `root` (as JavaScript), `POST /result`.
 *
 * @example
 * ```ts ignore
 * import { startPageServer } from "./serve.ts";
 * await using server = await startPageServer({ root: new URL("../../", import.meta.url) });
 * console.log(`${server.origin}/modules.html`);
 * ```
 */
export function startPageServer(options: PageServerOptions): Promise<PageServer> {
  const root = options.root;
  const nextPages = [...(options.nextPages ?? [])];
  const requested: string[] = [];
  const results: PostedResult[] = [];
  const waiting: ((result: PostedResult) => void)[] = [];
  const cache = new Map<string, string>();

  async function moduleSource(path: string): Promise<string | undefined> {
    const url = new URL(`.${path}`, root);
    // No escaping the project through `..` or encoded slashes.
    if (!url.href.startsWith(root.href) || !path.endsWith(".ts")) return undefined;
    let js = cache.get(url.href);
    if (js === undefined) {
      let ts: string;
      try {
        ts = await Deno.readTextFile(url);
      } catch {
        return undefined;
      }
      js = stripTypeScriptTypes(ts, { mode: "transform", sourceUrl: url.href });
      cache.set(url.href, js);
    }
    return js;
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = decodeURIComponent(url.pathname);
    requested.push(path);
    if (request.method === "POST" && path === "/result") {
      const result = JSON.parse(await request.text()) as PostedResult;
      const resolve = waiting.shift();
      if (resolve) resolve(result);
      else results.push(result);
      return new Response(nextPages.shift() ?? "");
    }
    if (path === "/modules.html") {
      const html = page("modules", "/tests/browser/page.ts");
      return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (path === "/bundle.html" && options.bundle !== undefined) {
      const html = page("bundle", "/bundle.js");
      return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (path === "/bundle.js" && options.bundle !== undefined) {
      return new Response(options.bundle, { headers: { "content-type": JS } });
    }
    const js = await moduleSource(path);
    if (js !== undefined) return new Response(js, { headers: { "content-type": JS } });
    return new Response("not found", { status: 404 });
  }

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen({ port }) {
        const origin = `http://127.0.0.1:${port}`;
        const close = async () => {
          await server.shutdown();
        };
        resolve({
          origin,
          requested,
          nextResult: () => {
            const queued = results.shift();
            if (queued) return Promise.resolve(queued);
            return new Promise((r) => waiting.push(r));
          },
          close,
          [Symbol.asyncDispose]: close,
        });
      },
    }, handle);
  });
}
