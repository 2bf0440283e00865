import { Container, getRandom } from "@cloudflare/containers";

export class Hello extends Container {
  defaultPort = 8080;
  sleepAfter = "30s";
  envVars = { GREETING: "hello from" };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const container = await getRandom(env.HELLO, 3);
    return container.fetch(request);
  },
};
