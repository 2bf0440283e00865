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
    if (new URL(request.url).pathname === "/state") {
      return Response.json({ running: this.container.running });
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
