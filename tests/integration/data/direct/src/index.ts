// A Durable Object written against ctx.container directly, in the style of the
// cloudflare/containers-demos Workers: start() in blockConcurrencyWhile, then getTcpPort().fetch.
import { DurableObject } from "cloudflare:workers";

export class Executor extends DurableObject {
  container: Container;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    this.container = ctx.container!;
    this.ctx.blockConcurrencyWhile(async () => {
      if (!this.container.running) {
        this.container.start({ env: { X_FROM_START: "yes" }, enableInternet: true });
      }
      this.container
        .monitor()
        .then(() => console.log("monitor resolved"))
        .catch((error: Error) => console.log(`monitor rejected: ${error.message}`));
    });
  }

  async fetch(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (path === "/state") {
      return Response.json({ running: this.container.running });
    }
    if (path === "/tcp") {
      // getTcpPort().connect: a raw socket to the container's port; the answer is passed on.
      const socket = this.container.getTcpPort(8080).connect();
      const writer = socket.writable.getWriter();
      const ask = "GET /over-tcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      await writer.write(new TextEncoder().encode(ask));
      return new Response(socket.readable);
    }
    const url = request.url.replace("https:", "http:");
    return this.container.getTcpPort(8080).fetch(url, request);
  }
}

export default {
  async fetch(request: Request, env: { EXECUTOR: DurableObjectNamespace }): Promise<Response> {
    const id = env.EXECUTOR.idFromName("executor");
    return env.EXECUTOR.get(id).fetch(request);
  },
};
