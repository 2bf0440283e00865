// The seed's pdf-parser Workflow, as its scaling document describes it: it receives a document's
// text blocks, checks them in batches of 5 parallel steps, and each step sends its block to one
// of the executor instances through getRandom, POSTing it to the executor's /execute.
import { getRandom } from "@cloudflare/containers";
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import type { PythonExecutorContainer } from "../index";

export interface ParseParams {
  blocks: string[];
}

export interface BlockCheck {
  block: number;
  instance: string; // the executor's hostname: which instance checked it
  words: number;
}

const BATCH = 5; // blocks checked in parallel, as the seed's workflow does

// The "hallucination check" here only counts words; it runs in the executor's sandbox.
const CHECK = "import socket, sys\nprint(socket.gethostname(), len(sys.stdin.read().split()))";

export class PdfParser extends WorkflowEntrypoint<
  { PYTHON_EXECUTOR: DurableObjectNamespace<PythonExecutorContainer> },
  ParseParams
> {
  async run(event: WorkflowEvent<ParseParams>, step: WorkflowStep): Promise<BlockCheck[]> {
    const blocks = event.payload.blocks;
    const checks: BlockCheck[] = [];
    for (let start = 0; start < blocks.length; start += BATCH) {
      const batch = blocks.slice(start, start + BATCH).map((text, i) =>
        step.do(`check block ${start + i}`, async () => {
          const container = await getRandom(this.env.PYTHON_EXECUTOR, 10);
          const response = await container.fetch("http://executor/execute", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ code: CHECK, stdin: text, timeout_s: 10 }),
          });
          if (!response.ok) throw new Error(`executor answered ${response.status}`);
          const result = (await response.json()) as { stdout: string };
          const [instance, words] = result.stdout.trim().split(" ");
          return { block: start + i, instance, words: Number(words) };
        }),
      );
      checks.push(...(await Promise.all(batch)));
    }
    return checks;
  }
}
