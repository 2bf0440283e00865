import { Container, getRandom } from "@cloudflare/containers";

export class PythonExecutorContainer extends Container {
  defaultPort = 8000; // the executor's port
  sleepAfter = "15m"; // keep warm for 15 minutes
  envVars = { WORKERS: "4" };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    // Load balance across 10 instances
    const container = await getRandom(env.PYTHON_EXECUTOR, 10);
    return container.fetch(request);
  },
};
