// A Worker as `npm create cloudflare` starts one today, with every local binding in use.
import { Container, getRandom } from "@cloudflare/containers";
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import { Buffer } from "node:buffer";
import page from "./page.html";

interface Env {
	GREETING: string;
	SECRET: string;
	FROM_FLAG?: string;
	KV: KVNamespace;
	BUCKET: R2Bucket;
	DB: D1Database;
	JOBS: Queue<{ id: string }>;
	OTHER: Fetcher;
	ASSETS: Fetcher;
	CHECKER: Workflow<{ blocks: string[] }>;
	ECHO: DurableObjectNamespace<Echo>;
}

export class Echo extends Container<Env> {
	defaultPort = 8080;
	sleepAfter = "2m";
}

/** Each block goes to one of 3 containers; what they answer is kept in KV. */
export class Checker extends WorkflowEntrypoint<Env, { blocks: string[] }> {
	async run(event: WorkflowEvent<{ blocks: string[] }>, step: WorkflowStep) {
		const answers = await Promise.all(
			event.payload.blocks.map((block, i) =>
				step.do(`check ${i}`, async () => {
					const container = await getRandom(this.env.ECHO, 3);
					const response = await container.fetch("http://container/check", { method: "POST", body: block });
					return await response.text();
				}),
			),
		);
		await step.do("store", async () => {
			await this.env.KV.put(`workflow:${event.instanceId}`, JSON.stringify(answers));
		});
		return answers.length;
	}
}

export default {
	async fetch(request, env): Promise<Response> {
		const url = new URL(request.url);
		const key = url.searchParams.get("key") ?? "k";
		switch (url.pathname) {
			case "/page":
				return new Response(page, { headers: { "content-type": "text/html" } });
			case "/vars":
				return Response.json({ greeting: env.GREETING, secret: env.SECRET, fromFlag: env.FROM_FLAG ?? null });
			case "/node":
				return new Response(Buffer.from("node:buffer works").toString("base64"));
			case "/kv":
				if (request.method === "PUT") await env.KV.put(key, await request.text());
				return new Response(await env.KV.get(key));
			case "/r2":
				if (request.method === "PUT") await env.BUCKET.put(key, await request.text());
				return new Response((await (await env.BUCKET.get(key))?.text()) ?? null);
			case "/d1":
				if (request.method === "PUT") await env.DB.prepare("INSERT INTO notes (body) VALUES (?)").bind(await request.text()).run();
				return Response.json((await env.DB.prepare("SELECT body FROM notes ORDER BY id").all()).results);
			case "/queue":
				await env.JOBS.send({ id: key });
				return new Response("queued");
			case "/other":
				return env.OTHER.fetch("http://other/");
			case "/asset":
				return env.ASSETS.fetch(new URL("/hello.txt", request.url));
			case "/workflow": {
				const blocks = Array.from({ length: Number(url.searchParams.get("n") ?? 5) }, (_, i) => `block ${i}`);
				const instance = await env.CHECKER.create({ params: { blocks } });
				return Response.json({ id: instance.id });
			}
			case "/workflow/status": {
				const instance = await env.CHECKER.get(key);
				const status = await instance.status();
				return Response.json({ status: status.status, stored: await env.KV.get(`workflow:${key}`) });
			}
			case "/echo":
				return (await getRandom(env.ECHO, 3)).fetch(request);
		}
		return new Response("Hello World!");
	},

	async queue(batch, env): Promise<void> {
		for (const message of batch.messages) {
			await env.KV.put(`queued:${message.body.id}`, "consumed");
			message.ack();
		}
	},

	async scheduled(controller, env): Promise<void> {
		await env.KV.put("cron", controller.cron);
	},
} satisfies ExportedHandler<Env, { id: string }>;
