// An editor's agent panel, played by the official ACP TypeScript SDK (@agentclientprotocol/sdk),
// driving `agentls acp` over stdio. It reads a plan (JSON file, argv[2]), runs it, and prints a
// JSON transcript on stdout that tests/test_acp.py asserts on.
//
// Plan: {command: [...], cwd, env, clientFs: bool, files: {absPath: text},
//        permission: "allow_once" | "allow_always" | "reject_once",
//        authenticate?: bool (authenticate with the first method initialize offers),
//        loadSessionId?: id (session/load it instead of session/new: a panel reopening a thread),
//        listAtStart?: bool (session/list right after the session opens),
//        setConfig?: [{configId, value}] (session/set_config_option, in order),
//        prompts: [{blocks: [...], cancelOn?: "agent_message_chunk" | "tool_call"}],
//        listSessions?: bool, loadSession?: bool, closeSession?: bool}
// A request that fails is recorded as {error: {code, message, data}} in its place.
// The client keeps `files` in memory as its open buffers: fs/read_text_file answers from them and
// fs/write_text_file writes into them; both are reported in the transcript.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";

// The SDK is installed in tests/node/node_modules (scripts/setup-test-node.sh), not beside this file.
const sdkPath = createRequire(new URL("../node/package.json", import.meta.url)).resolve(
  "@agentclientprotocol/sdk",
);
const { client, methods, ndJsonStream, PROTOCOL_VERSION } = await import(pathToFileURL(sdkPath));

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const buffers = new Map(Object.entries(plan.files ?? {}));

const transcript = {
  initialize: null,
  authenticated: null,
  session: null, // the session/new (or session/load) response
  opened: null, // updates sent while session/load replays the thread
  listedAtStart: null,
  configChanges: [],
  sessionId: null,
  idle: { updates: [], permissions: [], reads: [], writes: [] }, // between prompts
  prompts: [],
  sessions: null,
  loaded: null,
  closed: null,
  stderr: "",
};
let current = null; // the transcript entry of the prompt in flight
let cancelSent = false;

const child = spawn(plan.command[0], plan.command.slice(1), {
  cwd: plan.cwd,
  env: { ...process.env, ...(plan.env ?? {}) },
  stdio: ["pipe", "pipe", "pipe"],
});
child.stderr.on("data", (chunk) => {
  transcript.stderr += chunk.toString();
});

const stream = ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));

function failure(err) {
  return { error: { code: err?.code ?? null, message: String(err?.message ?? err), data: err?.data ?? null } };
}

function sink() {
  return current ?? transcript.idle;
}

const app = client({ name: "acp-test-panel" })
  .onNotification(methods.client.session.update, async (ctx) => {
    const update = ctx.params.update;
    sink().updates.push(update);
    sink().order?.push(update.sessionUpdate);
    const wanted = current?.cancelOn;
    if (wanted && !cancelSent && update.sessionUpdate === wanted) {
      cancelSent = true;
      current.cancelSentAfter = current.updates.length;
      await ctx.agent.notify(methods.agent.session.cancel, { sessionId: ctx.params.sessionId });
    }
  })
  .onRequest(methods.client.session.requestPermission, async (ctx) => {
    const options = ctx.params.options;
    const choice = options.find((o) => o.kind === plan.permission) ?? options[0];
    sink().order?.push("request_permission");
    sink().permissions.push({ toolCall: ctx.params.toolCall, options, chosen: choice.optionId });
    return { outcome: { outcome: "selected", optionId: choice.optionId } };
  })
  .onRequest(methods.client.fs.readTextFile, async (ctx) => {
    sink().reads.push(ctx.params.path);
    if (!buffers.has(ctx.params.path)) {
      throw new Error(`no such file: ${ctx.params.path}`);
    }
    return { content: buffers.get(ctx.params.path) };
  })
  .onRequest(methods.client.fs.writeTextFile, async (ctx) => {
    sink().order?.push("write_text_file");
    sink().writes.push({ path: ctx.params.path, content: ctx.params.content });
    buffers.set(ctx.params.path, ctx.params.content);
    return {};
  });

try {
  await app.connectWith(stream, async (agent) => {
    transcript.initialize = await agent.request(methods.agent.initialize, {
      protocolVersion: PROTOCOL_VERSION,
      clientCapabilities: {
        fs: { readTextFile: !!plan.clientFs, writeTextFile: !!plan.clientFs },
        terminal: false,
      },
      clientInfo: { name: "acp-test-panel", version: "1.0.0" },
    });
    if (plan.authenticate) {
      const [method] = transcript.initialize.authMethods ?? [];
      transcript.authenticated = await agent
        .request(methods.agent.authenticate, { methodId: method?.id ?? "none offered" })
        .catch(failure);
    }
    let session;
    if (plan.loadSessionId) {
      current = transcript.opened = { updates: [], permissions: [], reads: [], writes: [] };
      session = await agent
        .request(methods.agent.session.load, {
          sessionId: plan.loadSessionId,
          cwd: plan.cwd,
          mcpServers: [],
        })
        .then((loaded) => ({ ...loaded, sessionId: plan.loadSessionId }))
        .catch(failure);
      current = null;
    } else {
      session = await agent.request(methods.agent.session.new, {
        cwd: plan.cwd,
        mcpServers: [],
      });
    }
    transcript.session = session;
    if (session.error) return;
    transcript.sessionId = session.sessionId;
    if (plan.listAtStart) {
      transcript.listedAtStart = await agent.request(methods.agent.session.list, { cwd: plan.cwd });
    }
    for (const change of plan.setConfig ?? []) {
      transcript.configChanges.push(
        await agent
          .request(methods.agent.session.setConfigOption, {
            sessionId: session.sessionId,
            configId: change.configId,
            value: change.value,
          })
          .catch(failure),
      );
    }
    for (const step of plan.prompts) {
      current = {
        cancelOn: step.cancelOn ?? null,
        updates: [],
        order: [], // what arrived, in order: update kinds, request_permission, write_text_file
        permissions: [],
        reads: [],
        writes: [],
        stopReason: null,
        error: null,
      };
      cancelSent = false;
      transcript.prompts.push(current);
      try {
        const response = await agent.request(methods.agent.session.prompt, {
          sessionId: session.sessionId,
          prompt: step.blocks,
        });
        current.stopReason = response.stopReason;
        current.usage = response.usage ?? null;
      } catch (err) {
        current.error = String(err?.message ?? err);
      }
    }
    current = null;
    if (plan.listSessions) {
      transcript.sessions = await agent.request(methods.agent.session.list, { cwd: plan.cwd });
    }
    if (plan.loadSession) {
      current = transcript.loaded = { updates: [], permissions: [], reads: [], writes: [] };
      await agent.request(methods.agent.session.load, {
        sessionId: session.sessionId,
        cwd: plan.cwd,
        mcpServers: [],
      });
      current = null;
    }
    if (plan.closeSession) {
      transcript.closed = await agent.request(methods.agent.session.close, {
        sessionId: session.sessionId,
      });
    }
  });
} catch (err) {
  transcript.error = String(err?.stack ?? err);
}
transcript.buffers = Object.fromEntries(buffers);
child.stdin.end();
const exitCode = await new Promise((resolve) => {
  if (child.exitCode !== null) resolve(child.exitCode);
  else child.on("exit", (code) => resolve(code));
});
transcript.exitCode = exitCode;
process.stdout.write(JSON.stringify(transcript) + "\n");
