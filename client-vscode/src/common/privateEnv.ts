/**
 * Sets up, reuses and extends the server's private environment under the extension's global
 * storage: `<storage>/env-<extension version>`. A setup works in a temporary folder, writes its
 * marker last and only then renames it into place, under a lock shared by every VS Code window:
 * nothing half-installed is ever used, and a setup cut short (VS Code closed) is redone.
 */

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, realpathSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
    ENV_MARKER,
    MARKER_FORMAT,
    PYTHON_INFO_ARGS,
    bundledInstallArgs,
    bundledInstallEnv,
    choosePython,
    createVenvArgs,
    decideReuse,
    indexInstallArgs,
    isDiskFull,
    lastLines,
    localModelSteps,
    parsePythonInfo,
    pythonVersionText,
    setupFailureMessage,
    venvPython,
    type EnvMarker,
    type PythonCandidate,
    type PythonInfo,
    type SetupStep,
    type Wheelhouse,
} from './privateEnvPlan';
import { probeInterpreter, pythonFailure } from './serverCommand';

export interface EnvOptions {
    /** The folder that holds the environments and the lock (under the extension's global storage). */
    storageDir: string;
    extensionVersion: string;
    extensionDir: string;
    /** The wheels the extension carries; none: agentls comes from the user's package index. */
    wheelhouse?: Wheelhouse;
    /** `agentls.python` when set. */
    settingPython?: string;
    /** Working directory of every Python started here: never a workspace folder. */
    cwd?: string;
    log: (line: string) => void;
    /** pip's own output, for the logs. */
    logOutput: (line: string) => void;
}

export interface ReadyEnv {
    ok: true;
    python: string;
    envDir: string;
    marker: EnvMarker;
    reused: boolean;
}

export type EnvResult = ReadyEnv | { ok: false; message: string };

const LOCK_POLL_MS = 500;
const LOCK_WAIT_MS = 30 * 60 * 1000;
/** A lock whose owner cannot be checked (another host) is taken over after this long. */
const FOREIGN_LOCK_MS = 2 * 60 * 60 * 1000;
const INSTALL_TIMEOUT_MS = 15 * 60 * 1000;
const LOCAL_MODEL_TIMEOUT_MS = 60 * 60 * 1000;
/** What a finished environment must import: the server and its compiled dependencies. */
const SETUP_PROBE = ['-P', '-c', 'import agentls.lsp.server'];

export function envDirectory(storageDir: string, extensionVersion: string): string {
    return path.join(storageDir, `env-${extensionVersion}`);
}

function lockDirectory(storageDir: string): string {
    return path.join(storageDir, '.lock');
}

function samePython(a: string, b: string): boolean {
    const resolve = (p: string): string => {
        try {
            return realpathSync(p);
        } catch {
            return path.resolve(p);
        }
    };
    return a === b || resolve(a) === resolve(b);
}

async function exists(p: string): Promise<boolean> {
    return fs.access(p).then(
        () => true,
        () => false,
    );
}

export async function readMarker(envDir: string): Promise<{ exists: boolean; marker: unknown }> {
    if (!(await exists(envDir))) {
        return { exists: false, marker: undefined };
    }
    try {
        return { exists: true, marker: JSON.parse(await fs.readFile(path.join(envDir, ENV_MARKER), 'utf8')) as unknown };
    } catch {
        return { exists: true, marker: undefined };
    }
}

/** What an interpreter says about itself (version, implementation), or why it could not. */
export function probePython(python: string, cwd: string | undefined, timeoutMs = 15000): Promise<PythonInfo | string> {
    return new Promise((resolve) => {
        execFile(python, PYTHON_INFO_ARGS, { cwd, timeout: timeoutMs, windowsHide: true }, (error, stdout, stderr) => {
            if (!error) {
                resolve(parsePythonInfo(String(stdout)));
                return;
            }
            resolve(pythonFailure(error, stderr, timeoutMs, 'it is older than Python 3.11'));
        });
    });
}

export interface RunOptions {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    timeoutMs: number;
    onLine: (line: string) => void;
    signal?: AbortSignal;
}

/** Runs a program to its end; its output goes line by line to `onLine` and is kept for the error message. */
export function runProgram(command: string, args: string[], options: RunOptions): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve) => {
        let output = '';
        let pending = '';
        const child = spawn(command, args, {
            cwd: options.cwd,
            env: options.env,
            stdio: ['ignore', 'pipe', 'pipe'],
            windowsHide: true,
            // Its own process group, so that stopping it also stops the compilers pip started.
            detached: process.platform !== 'win32',
        });
        const stop = (): void => {
            try {
                if (child.pid !== undefined && process.platform !== 'win32') {
                    process.kill(-child.pid, 'SIGTERM');
                } else {
                    child.kill();
                }
            } catch {
                // already gone
            }
        };
        const timer = setTimeout(() => {
            output += `\nstopped after ${Math.round(options.timeoutMs / 60000)} minutes without finishing`;
            stop();
        }, options.timeoutMs);
        options.signal?.addEventListener('abort', stop, { once: true });
        const onData = (chunk: Buffer): void => {
            const text = pending + chunk.toString();
            const lines = text.split(/\r?\n/);
            pending = lines.pop() ?? '';
            for (const line of lines) {
                output += `${line}\n`;
                options.onLine(line);
            }
            output = output.slice(-20000);
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        const finish = (code: number | null, extra = ''): void => {
            clearTimeout(timer);
            options.signal?.removeEventListener('abort', stop);
            if (pending) {
                output += pending;
                options.onLine(pending);
            }
            resolve({ code, output: output + extra });
        };
        child.once('error', (error) => finish(null, `\n${error.message}`));
        child.once('close', (code) => finish(code));
    });
}

interface LockOwner {
    pid: number;
    host: string;
    since: number;
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
}

async function lockIsStale(lockDir: string): Promise<boolean> {
    try {
        const owner = JSON.parse(await fs.readFile(path.join(lockDir, 'owner.json'), 'utf8')) as LockOwner;
        if (owner.host === os.hostname()) {
            return !alive(owner.pid);
        }
        return Date.now() - owner.since > FOREIGN_LOCK_MS;
    } catch {
        // Created but not yet described by its owner, or left so by a crash between the two steps.
        const stat = await fs.stat(lockDir).catch(() => undefined);
        return stat === undefined || Date.now() - stat.mtimeMs > 60_000;
    }
}

async function tryLock(lockDir: string): Promise<boolean> {
    try {
        await fs.mkdir(lockDir);
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
            return false;
        }
        throw error;
    }
    const owner: LockOwner = { pid: process.pid, host: os.hostname(), since: Date.now() };
    await fs.writeFile(path.join(lockDir, 'owner.json'), JSON.stringify(owner));
    return true;
}

/**
 * Takes the lock every window's setup shares; waits while a live setup holds it, and takes over
 * one whose window is gone. Resolves to the function that releases it.
 */
export async function acquireLock(storageDir: string, onWait: () => void, waitMs = LOCK_WAIT_MS): Promise<() => Promise<void>> {
    const lockDir = lockDirectory(storageDir);
    await fs.mkdir(storageDir, { recursive: true });
    const deadline = Date.now() + waitMs;
    let told = false;
    while (!(await tryLock(lockDir))) {
        if (await lockIsStale(lockDir)) {
            await fs.rm(lockDir, { recursive: true, force: true });
            continue;
        }
        if (Date.now() > deadline) {
            throw new Error(`another VS Code window has been setting up agentls's server for ${Math.round(waitMs / 60000)} minutes (lock ${lockDir})`);
        }
        if (!told) {
            told = true;
            onWait();
        }
        await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
    return () => fs.rm(lockDir, { recursive: true, force: true });
}

/** The finished environment of this version when it can be used as it is; else why not. */
export async function findReusable(options: EnvOptions): Promise<ReadyEnv | { ok: false; reason: string }> {
    const envDir = envDirectory(options.storageDir, options.extensionVersion);
    const decision = decideReuse(
        await readMarker(envDir),
        { extensionVersion: options.extensionVersion, bundle: options.wheelhouse?.manifest.bundle ?? null, settingPython: options.settingPython },
        samePython,
    );
    if (!decision.reuse) {
        return { ok: false, reason: decision.reason };
    }
    const python = venvPython(envDir);
    // The interpreter it was made with may have been removed or upgraded since.
    const problem = await probeInterpreter(python, options.cwd);
    if (problem !== undefined) {
        return { ok: false, reason: `it no longer works (${problem})` };
    }
    return { ok: true, python, envDir, marker: decision.marker, reused: true };
}

class SetupFailure extends Error {}

/** Makes a venv in `work` with `base`, installs agentls, checks that the server imports, writes the marker last. */
async function buildEnvironment(
    work: string,
    base: PythonCandidate,
    version: string,
    options: EnvOptions,
    progress: (message: string) => void,
): Promise<EnvMarker> {
    const wheelhouse = options.wheelhouse;
    const agentlsVersion = wheelhouse?.manifest.agentlsVersion ?? options.extensionVersion;
    const context = { storageDir: options.storageDir, python: base.python, fromIndex: !wheelhouse, version: agentlsVersion };
    const python = venvPython(work);
    const step = async (what: SetupStep, command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> => {
        options.log(`Running ${command} ${args.join(' ')}`);
        const result = await runProgram(command, args, { cwd: options.cwd, env, timeoutMs: INSTALL_TIMEOUT_MS, onLine: options.logOutput });
        if (result.code !== 0) {
            throw new SetupFailure(setupFailureMessage(what, result.output, context));
        }
    };
    progress(`creating its environment with Python ${version} (${base.python})`);
    await step('venv', base.python, createVenvArgs(work, !wheelhouse));
    if (wheelhouse) {
        progress(`installing agentls ${agentlsVersion} and its packages from the extension, offline`);
        await step('install', python, bundledInstallArgs(wheelhouse), bundledInstallEnv(process.env, os.devNull));
    } else {
        progress(`installing agentls ${agentlsVersion} from your package index`);
        await step('install', python, indexInstallArgs(agentlsVersion));
    }
    progress('checking that it starts');
    await step('probe', python, SETUP_PROBE);
    const marker: EnvMarker = {
        format: MARKER_FORMAT,
        extensionVersion: options.extensionVersion,
        agentlsVersion,
        bundle: wheelhouse?.manifest.bundle ?? null,
        python: base.python,
        pythonVersion: version,
        source: base.source,
        extensionDir: options.extensionDir,
        createdAt: new Date().toISOString(),
    };
    await fs.writeFile(path.join(work, ENV_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
    return marker;
}

/**
 * Makes the environment of this version: under the lock, in a temporary folder, marker last, then
 * renamed into place (replacing an older or unfinished one). `candidates` lists the interpreters to
 * make it with, in order; `progress` says what happens, for the notification.
 */
export async function setUpPrivateEnv(
    options: EnvOptions,
    candidates: () => Promise<PythonCandidate[]>,
    progress: (message: string) => void,
): Promise<EnvResult> {
    let release: (() => Promise<void>) | undefined;
    let work: string | undefined;
    try {
        release = await acquireLock(options.storageDir, () => progress('waiting for another VS Code window that is setting it up'));
        const ready = await findReusable(options);
        if (ready.ok) {
            options.log(`Another window set up the private environment ${ready.envDir}: using it.`);
            return ready;
        }
        await removeLeftovers(options);
        const choice = await choosePython(await candidates(), (python) => probePython(python, options.cwd), options.wheelhouse?.manifest.pythonVersions);
        for (const line of choice.tried) {
            options.log(`Python lookup: ${line}`);
        }
        if (!choice.ok) {
            return { ok: false, message: choice.message };
        }
        work = path.join(options.storageDir, `.tmp-${randomBytes(4).toString('hex')}`);
        const marker = await buildEnvironment(work, choice.candidate, pythonVersionText(choice.info), options, progress);
        const envDir = envDirectory(options.storageDir, options.extensionVersion);
        await moveIntoPlace(work, envDir, options.storageDir);
        work = undefined;
        return { ok: true, python: venvPython(envDir), envDir, marker, reused: false };
    } catch (error) {
        if (error instanceof SetupFailure) {
            return { ok: false, message: error.message };
        }
        const text = error instanceof Error ? error.message : String(error);
        return {
            ok: false,
            message: isDiskFull(text)
                ? setupFailureMessage('install', text, { storageDir: options.storageDir, python: '', fromIndex: false, version: '' })
                : `agentls could not set up its server: ${text}. Fix: see the logs, then run "agentls: Restart Server".`,
        };
    } finally {
        if (work) {
            await fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
        }
        await release?.().catch(() => undefined);
    }
}

async function moveIntoPlace(work: string, envDir: string, storageDir: string): Promise<void> {
    let trash: string | undefined;
    if (await exists(envDir)) {
        trash = path.join(storageDir, `.trash-${randomBytes(4).toString('hex')}`);
        await fs.rename(envDir, trash);
    }
    await fs.rename(work, envDir);
    if (trash) {
        await fs.rm(trash, { recursive: true, force: true }).catch(() => undefined);
    }
}

/**
 * Under the lock: what a setup cut short left (temporary folders), and environments of other
 * versions whose extension VS Code has removed (a window may still run an older version).
 */
async function removeLeftovers(options: EnvOptions): Promise<void> {
    const current = path.basename(envDirectory(options.storageDir, options.extensionVersion));
    for (const name of await fs.readdir(options.storageDir).catch(() => [] as string[])) {
        const full = path.join(options.storageDir, name);
        let remove = name.startsWith('.tmp-') || name.startsWith('.trash-');
        if (name.startsWith('env-') && name !== current) {
            const { marker } = await readMarker(full);
            const made = (marker as Partial<EnvMarker> | undefined)?.extensionDir;
            remove = !made || !(await exists(made));
        }
        if (remove) {
            options.log(`Removing ${full}, left by an unfinished or older setup.`);
            await fs.rm(full, { recursive: true, force: true }).catch((error: unknown) => options.log(`Could not remove ${full}: ${String(error)}`));
        }
    }
}

/** Removes leftovers when no other window is setting up; never waits. */
export async function tidyStorage(options: EnvOptions): Promise<void> {
    const lockDir = lockDirectory(options.storageDir);
    if (!(await tryLock(lockDir).catch(() => false))) {
        return;
    }
    try {
        await removeLeftovers(options);
    } finally {
        await fs.rm(lockDir, { recursive: true, force: true }).catch(() => undefined);
    }
}

/**
 * Adds the local model (agentls[local] and the model file) to the finished environment, under the
 * lock; the marker then says so. Cancelling stops pip (and the compilers it started).
 */
export async function installLocalModel(env: { envDir: string; marker: EnvMarker }, options: EnvOptions, progress: (message: string) => void, signal?: AbortSignal): Promise<{ ok: true } | { ok: false; message: string; cancelled: boolean }> {
    let release: (() => Promise<void>) | undefined;
    try {
        release = await acquireLock(options.storageDir, () => progress('waiting for another VS Code window that is setting up agentls'));
        const python = venvPython(env.envDir);
        for (const step of localModelSteps(env.marker.agentlsVersion, process.env, env.marker.bundle ? options.wheelhouse : undefined)) {
            progress(step.what);
            options.log(`Running ${python} ${step.args.join(' ')}`);
            const result = await runProgram(python, step.args, { cwd: options.cwd, env: step.env, timeoutMs: LOCAL_MODEL_TIMEOUT_MS, onLine: options.logOutput, signal });
            if (signal?.aborted) {
                return { ok: false, cancelled: true, message: 'The local model was not installed: cancelled.' };
            }
            if (result.code !== 0) {
                options.log(`pip failed: ${lastLines(result.output, 10)}`);
                return {
                    ok: false,
                    cancelled: false,
                    message: setupFailureMessage('localModel', result.output, { storageDir: options.storageDir, python, fromIndex: true, version: env.marker.agentlsVersion }),
                };
            }
        }
        const marker: EnvMarker = { ...env.marker, localModel: true };
        const file = path.join(env.envDir, ENV_MARKER);
        await fs.writeFile(`${file}.new`, `${JSON.stringify(marker, null, 2)}\n`);
        await fs.rename(`${file}.new`, file);
        return { ok: true };
    } catch (error) {
        const text = error instanceof Error ? error.message : String(error);
        return { ok: false, cancelled: false, message: `agentls could not install the local model: ${text}. Fix: see the logs, then try again.` };
    } finally {
        await release?.().catch(() => undefined);
    }
}
