"""Worker mode: the user's Worker runs in workerd (through Miniflare, from npm), and emu supplies
the container runtime API that a container-enabled Durable Object sees as `ctx.container`.

- `mode.py`: which mode applies, and worker mode's part of an Emulator;
- `toolchain.py`: Node.js, and the npm packages installed once into a cache;
- `project.py`: the Worker's settings and the generated entry module;
- `runtime.py`: the runtime process (js/runner.mjs: esbuild, then Miniflare);
- `api.py`: the runtime API on emu's front, over the instance pools;
- `js/shim.js`: `ctx.container`, as the Worker sees it.
"""
