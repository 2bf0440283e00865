import { Container, getRandom } from "@cloudflare/containers";

interface Env {
  PYTHON_EXECUTOR: DurableObjectNamespace<PythonExecutorContainer>;
}

export class PythonExecutorContainer extends Container<Env> {
  defaultPort = 8000; // FastAPI server port
  sleepAfter = '15m'; // Keep warm for 15 minutes
  envVars = {
    LOG_LEVEL: 'info',
    "UVICORN_WORKERS": "4",
  };

  override onStart() {
    console.log("python executor started");
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    // Load balance across 10 instances
    const container = await getRandom(env.PYTHON_EXECUTOR, 10);
    return container.fetch(request);
  },
};
