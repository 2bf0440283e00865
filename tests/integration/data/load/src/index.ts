import { Container, getRandom } from "@cloudflare/containers";

export class Closing extends Container {
  defaultPort = 8080;
  sleepAfter = "5m";
  envVars = { PROTOCOL: "HTTP/1.0" };
}

export class KeepAlive extends Container {
  defaultPort = 8080;
  sleepAfter = "5m";
  envVars = { PROTOCOL: "HTTP/1.1" };
}

export class LateClose extends Container {
  defaultPort = 8080;
  sleepAfter = "5m";
  envVars = { PROTOCOL: "HTTP/1.0", CLOSE_DELAY: "0.3" };
}

type Env = {
  CLOSING: DurableObjectNamespace<Closing>;
  KEEP_ALIVE: DurableObjectNamespace<KeepAlive>;
  LATE_CLOSE: DurableObjectNamespace<LateClose>;
};

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const [, kind, rest, name] = new URL(request.url).pathname.split("/");
    const binding = kind === "keep" ? env.KEEP_ALIVE : kind === "late" ? env.LATE_CLOSE : env.CLOSING;
    // /close/seen/instance-1: what that instance saw (getRandom names its instances so).
    if (rest === "seen") return binding.get(binding.idFromName(name)).fetch(request);
    const container = await getRandom(binding, kind === "late" ? 1 : 3);
    return container.fetch(request);
  },
};
