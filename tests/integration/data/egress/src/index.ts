// A Worker for emu's egress tests: each class sets what the library offers for outbound traffic,
// and its handlers answer with who answered, so that a test sees which rule won.
import { Container, ContainerProxy, getContainer } from '@cloudflare/containers';

export { ContainerProxy };

const answer = (who: string) => async (request: Request) =>
  new Response(`${who} ${request.method} ${new URL(request.url).host}${new URL(request.url).pathname}`);

class Base extends Container {
  defaultPort = 8080;
  sleepAfter = '5m';

  async denyAtRuntime(host: string): Promise<void> {
    await this.denyHost(host);
  }

  async runExec(cmd: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const process = await this.ctx.container!.exec(cmd);
    const output = await process.output();
    const text = (b: ArrayBuffer) => new TextDecoder().decode(b);
    return { stdout: text(output.stdout), stderr: text(output.stderr), exitCode: output.exitCode };
  }

  async trySnapshot(): Promise<string> {
    try {
      await (this.ctx.container as any).snapshotDirectory({ dir: '/tmp' });
      return 'no error';
    } catch (error) {
      return String((error as Error).message);
    }
  }

  async inspectIt(): Promise<unknown> {
    return (this.ctx.container as any).inspect();
  }
}

export class Denier extends Base {
  deniedHosts = ['denied.test'];
}
Denier.outbound = answer('catch-all');

export class Allower extends Base {
  enableInternet = false;
  allowedHosts = ['allowed.test', '*.glob.test'];
}
Allower.outboundByHost = { 'allowed.test': answer('exact'), '*.glob.test': answer('glob') };

export class Secure extends Base {
  interceptHttps = true;
}
Secure.outboundByHost = { 'secure.test': answer('secure') };

export class Open extends Base {}

export class Sealed extends Base {
  enableInternet = false;
}

type Env = Record<string, DurableObjectNamespace<Base>>;
const BINDINGS: Record<string, string> = {
  denier: 'DENIER',
  allower: 'ALLOWER',
  secure: 'SECURE',
  open: 'OPEN',
  sealed: 'SEALED',
};

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    // /<class>/<name>/<action>
    const [, kind, name, action] = url.pathname.split('/');
    const binding = BINDINGS[kind ?? ''];
    if (binding === undefined || name === undefined) return new Response('not found', { status: 404 });
    const stub = getContainer(env[binding] as any, name) as any;
    if (action === 'deny') {
      await stub.denyAtRuntime(url.searchParams.get('host'));
      return new Response('denied');
    }
    if (action === 'exec') {
      return Response.json(await stub.runExec(JSON.parse(url.searchParams.get('cmd') ?? '[]')));
    }
    if (action === 'snapshot') return new Response(await stub.trySnapshot());
    if (action === 'inspect') return Response.json(await stub.inspectIt());
    return stub.fetch(request);
  },
};
