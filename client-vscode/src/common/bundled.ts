/**
 * The server the extension brings (`agentls.importStrategy: useBundled`): its private environment
 * set up with a progress notification on first use, reused afterwards, and the local model added
 * on request. The work itself is in privateEnv.ts.
 */

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ProgressLocation, window, workspace, type ExtensionContext, type Uri } from 'vscode';
import { CONFIG_SECTION } from './constants';
import { traceInfo, traceWarn } from './logging';
import { findReusable, setUpPrivateEnv, tidyStorage, installLocalModel as addLocalModel, type EnvOptions, type EnvResult, type ReadyEnv } from './privateEnv';
import { currentTarget, parseWheelhouse, type PythonCandidate, type Wheelhouse } from './privateEnvPlan';
import { findOnPath, getExtensionInterpreter } from './python';
import { pythonServer, type Resolution } from './serverCommand';

export type ImportStrategy = 'useBundled' | 'fromEnvironment';

export const SETUP_TITLE = 'agentls: setting up its server, first run only';
export const LOCAL_MODEL_TITLE = 'agentls: installing the local model';

/**
 * `agentls.importStrategy` from the user's settings only: it chooses which program runs, so a
 * workspace never sets it (its scope is `machine`; a workspace value is ignored even if present).
 */
export function readImportStrategy(): ImportStrategy {
    const inspected = workspace.getConfiguration(CONFIG_SECTION).inspect<string>('importStrategy');
    const value = inspected?.globalValue ?? inspected?.defaultValue ?? 'useBundled';
    if (value !== 'useBundled' && value !== 'fromEnvironment') {
        traceWarn(`agentls.importStrategy: "${value}" is neither "useBundled" nor "fromEnvironment"; using "useBundled".`);
        return 'useBundled';
    }
    return value;
}

function isMusl(): boolean {
    if (process.platform !== 'linux') {
        return false;
    }
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    return !report?.header?.glibcVersionRuntime;
}

/** The wheels packaged into this .vsix for this platform, if any (a plain .vsix has none). */
export function findWheelhouse(extensionDir: string): Wheelhouse | undefined {
    const dir = path.join(extensionDir, 'bundled', 'wheels');
    let text: string;
    try {
        text = readFileSync(path.join(dir, 'wheelhouse.json'), 'utf8');
    } catch {
        return undefined;
    }
    const { wheelhouse, problem } = parseWheelhouse(text, dir, currentTarget(process.platform, process.arch, isMusl()));
    if (problem) {
        traceWarn(`Not using the bundled wheels: ${problem}; agentls comes from your package index instead.`);
    }
    return wheelhouse;
}

export class BundledServer {
    private env: ReadyEnv | undefined;
    private readonly wheelhouse: Wheelhouse | undefined;

    constructor(private readonly context: ExtensionContext) {
        this.wheelhouse = findWheelhouse(context.extensionPath);
    }

    private options(settingPython: string, cwd: string | undefined): EnvOptions {
        return {
            storageDir: path.join(this.context.globalStorageUri.fsPath, 'server'),
            extensionVersion: (this.context.extension.packageJSON as { version: string }).version,
            extensionDir: this.context.extensionPath,
            wheelhouse: this.wheelhouse,
            settingPython: settingPython || undefined,
            cwd,
            log: traceInfo,
            logOutput: (line) => line.trim() && traceInfo(`pip: ${line}`),
        };
    }

    /** The server command in the private environment, setting it up first when needed. */
    async resolve(settingPython: string, cwd: string | undefined, folder: Uri | undefined): Promise<Resolution> {
        const options = this.options(settingPython, cwd);
        const ready = await findReusable(options);
        let env: EnvResult;
        if (ready.ok) {
            env = ready;
            traceInfo(
                `Reusing the private environment ${ready.envDir} (agentls ${ready.marker.agentlsVersion}, Python ${ready.marker.pythonVersion} from ${ready.marker.python}, ` +
                    `${ready.marker.bundle ? 'bundled wheels' : 'package index'}, made ${ready.marker.createdAt}).`,
            );
            void tidyStorage(options);
        } else {
            traceInfo(`Setting up the private environment in ${options.storageDir}: ${ready.reason}; wheels: ${this.wheelhouse ? this.wheelhouse.dir : 'none bundled, from your package index'}.`);
            const started = Date.now();
            env = await window.withProgress({ location: ProgressLocation.Notification, title: SETUP_TITLE }, (progress) =>
                setUpPrivateEnv(options, () => this.candidates(settingPython, folder), (message) => {
                    traceInfo(`Setup: ${message}`);
                    progress.report({ message });
                }),
            );
            if (env.ok && !env.reused) {
                traceInfo(`Set up the private environment ${env.envDir} in ${Math.round((Date.now() - started) / 1000)} s.`);
            }
        }
        if (!env.ok) {
            this.env = undefined;
            return { ok: false, message: env.message, tried: [] };
        }
        this.env = env;
        return { ok: true, server: pythonServer(env.python, 'bundled'), tried: [`private environment ${env.envDir}`] };
    }

    /** `agentls.python`, the Python extension's interpreter, then `python3` (`python` on Windows) on PATH. */
    private async candidates(settingPython: string, folder: Uri | undefined): Promise<PythonCandidate[]> {
        if (settingPython) {
            return [{ python: settingPython, source: 'setting' }];
        }
        const found: PythonCandidate[] = [];
        const extensionPython = await getExtensionInterpreter(folder);
        if (extensionPython) {
            found.push({ python: extensionPython, source: 'pythonExtension' });
        }
        for (const name of process.platform === 'win32' ? ['python', 'python3'] : ['python3']) {
            const onPath = await findOnPath(name);
            if (onPath) {
                found.push({ python: onPath, source: 'path' });
            }
        }
        return found;
    }

    /**
     * Adds the local model to the private environment, with a cancellable progress notification.
     * Resolves to a message for the user when it did not (already said as a toast), or undefined.
     */
    async installLocalModel(settingPython: string, cwd: string | undefined, folder: Uri | undefined): Promise<{ ok: boolean; message?: string; already?: boolean; cancelled?: boolean }> {
        if (!this.env) {
            const resolution = await this.resolve(settingPython, cwd, folder);
            if (!resolution.ok) {
                return { ok: false, message: resolution.message };
            }
        }
        const env = this.env;
        if (!env) {
            return { ok: false, message: 'agentls could not set up its server: see the logs.' };
        }
        if (env.marker.localModel) {
            return { ok: true, already: true };
        }
        const options = this.options(settingPython, cwd);
        const result = await window.withProgress(
            { location: ProgressLocation.Notification, title: LOCAL_MODEL_TITLE, cancellable: true },
            (progress, token) => {
                const abort = new AbortController();
                token.onCancellationRequested(() => abort.abort());
                return addLocalModel(env, options, (message) => {
                    traceInfo(`Local model: ${message}`);
                    progress.report({ message });
                }, abort.signal);
            },
        );
        if (result.ok) {
            this.env = { ...env, marker: { ...env.marker, localModel: true } };
            return { ok: true };
        }
        return { ok: false, message: result.message, cancelled: result.cancelled };
    }
}
