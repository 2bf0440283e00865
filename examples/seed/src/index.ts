import { Container, getRandom } from "@cloudflare/containers";

export { PdfParser } from "./workflows/pdf-parser";

export class PythonExecutorContainer extends Container {
  defaultPort = 8000; // the executor's port
  sleepAfter = "15m"; // keep warm for 15 minutes
  envVars = { WORKERS: "4" };
}

interface Env {
  PYTHON_EXECUTOR: DurableObjectNamespace<PythonExecutorContainer>;
  PDF_PARSER: Workflow<{ blocks: string[] }>;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const { pathname } = new URL(request.url);
    // POST /documents {"blocks": [...]}: parse a document with the pdf-parser Workflow.
    if (pathname === "/documents" && request.method === "POST") {
      const { blocks } = (await request.json()) as { blocks: string[] };
      const instance = await env.PDF_PARSER.create({ params: { blocks } });
      return Response.json({ id: instance.id });
    }
    if (pathname.startsWith("/documents/")) {
      const status = await (await env.PDF_PARSER.get(pathname.slice(11))).status();
      return Response.json(status);
    }
    // Load balance across 10 instances
    const container = await getRandom(env.PYTHON_EXECUTOR, 10);
    return container.fetch(request);
  },
};
