import { DurableObject } from 'cloudflare:workers';
import { Container, getContainer } from '@cloudflare/containers';

export class Echo extends Container {
  defaultPort = 8080;
  sleepAfter = '5m';

  // Called over RPC: its container request belongs to no request of the Worker's it can see.
  async viaRpc(): Promise<number> {
    return (await this.containerFetch('http://echo/from-rpc')).status;
  }
}

// A Durable Object of no container: it answers with the headers it got.
export class Plain extends DurableObject {
  async fetch(request: Request): Promise<Response> {
    return Response.json({ headers: [...request.headers.keys()] });
  }
}

type Env = { ECHO: DurableObjectNamespace<Echo>; PLAIN: DurableObjectNamespace<Plain> };

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === '/two') {
      // One request of the Worker's, two containers: what each saw, and what the Worker saw.
      const a = await getContainer(env.ECHO, 'left').fetch(request);
      const b = await getContainer(env.ECHO, 'right').fetch(new Request('http://echo/b'));
      return Response.json({
        left: await a.json(),
        right: await b.json(),
        workerSaw: [...request.headers.keys()],
        stubAnswered: [a.headers.get('x-emu-instance'), b.headers.get('x-emu-instance')],
        plainSaw: await (await env.PLAIN.get(env.PLAIN.idFromName('p')).fetch(request)).json(),
      });
    }
    if (pathname === '/rpc') {
      return new Response(String(await getContainer(env.ECHO, 'rpc-one').viaRpc()));
    }
    if (pathname === '/boom') {
      throw new Error('boom in the cockpit Worker');
    }
    if (pathname.startsWith('/one/')) {
      return getContainer(env.ECHO, pathname.slice(5)).fetch(request);
    }
    return new Response('the cockpit Worker\n');
  },
};
