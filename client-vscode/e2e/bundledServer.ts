/**
 * The machine of a user who never installed agentls, for the end-to-end scenario: a plain Python
 * (a fresh venv without agentls) first on PATH, no agentls anywhere else; and what the extension's
 * private environment leaves to check (its marker, the setup and reuse lines in its log).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { clientDir, fail, log, STEP_TIMEOUT_MS, waitFor } from './helpers';

export interface PlainPython {
    python: string;
    bin: string;
}

/**
 * A new venv, without pip or agentls, made from the interpreter `agentlsPython` was made from:
 * the extension must set up its server from it with nothing but the wheels it carries.
 */
export function makePlainPython(dir: string, agentlsPython: string): PlainPython {
    const base = spawnSync(agentlsPython, ['-c', 'import sys; print(sys._base_executable)'], { encoding: 'utf8' }).stdout.trim();
    const made = spawnSync(base, ['-m', 'venv', '--without-pip', dir], { encoding: 'utf8' });
    if (made.status !== 0) {
        fail(`could not make a plain venv with ${base}: ${made.stderr}`);
    }
    const bin = path.join(dir, 'bin');
    const python = path.join(bin, 'python3');
    const probe = spawnSync(python, ['-P', '-c', 'import agentls'], { encoding: 'utf8', env: withoutPythonPath(process.env) });
    if (probe.status === 0) {
        fail(`the plain Python ${python} can import agentls: the scenario needs a machine without it`);
    }
    return { python, bin };
}

function withoutPythonPath(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    const rest = { ...base };
    delete rest.PYTHONPATH;
    delete rest.PYTHONHOME;
    delete rest.VIRTUAL_ENV;
    return rest;
}

/**
 * The environment code-server runs in: HOME a fresh folder whose login profile puts the plain Python
 * first on PATH (VS Code's server gives the extension host the login shell's environment, as a
 * user's would be), no directory with an `agentls`, no PYTHONPATH.
 */
export function environment(home: string, plainBin: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    writeFileSync(path.join(home, '.profile'), `PATH="${plainBin}:$PATH"\nexport PATH\n`);
    const rest = withoutPythonPath(base);
    const dirs = (base.PATH ?? '').split(path.delimiter).filter((dir) => dir && !existsSync(path.join(dir, 'agentls')));
    return { ...rest, HOME: home, SHELL: '/bin/bash', PATH: [plainBin, ...dirs].join(path.delimiter) };
}

export interface EnvMarker {
    extensionVersion: string;
    agentlsVersion: string;
    bundle: string | null;
    python: string;
    pythonVersion: string;
    createdAt: string;
}

/** The marker the extension writes last into its private environment, under VS Code's global storage. */
export function readEnvMarker(userData: string): { file: string; marker: EnvMarker } | undefined {
    const manifest = JSON.parse(readFileSync(path.join(clientDir, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
    const file = path.join(userData, 'User', 'globalStorage', `${manifest.publisher}.${manifest.name}`, 'server', `env-${manifest.version}`, 'agentls-env.json');
    return existsSync(file) ? { file, marker: JSON.parse(readFileSync(file, 'utf8')) as EnvMarker } : undefined;
}

export function count(text: string, needle: string): number {
    return text.split(needle).length - 1;
}

export const SETUP_LINE = 'Setting up the private environment';
export const SET_UP_LINE = 'Set up the private environment';
export const REUSE_LINE = 'Reusing the private environment';
export const SETUP_TITLE = 'agentls: setting up its server, first run only';

/**
 * Opens `folder` in a second window (a new extension host and server) and checks that it started
 * its server from the environment the first window set up, without setting it up again.
 */
export async function checkSecondWindowReuses(options: {
    context: BrowserContext;
    base: string;
    folder: string;
    userData: string;
    outputLog: () => string;
    createdAt: string;
    budgetShown: (page: Page) => Promise<string | undefined>;
    timeoutMs: number;
}): Promise<void> {
    const second = await options.context.newPage();
    second.setDefaultTimeout(STEP_TIMEOUT_MS);
    await second.goto(`${options.base}/?folder=${encodeURIComponent(options.folder)}`);
    await second.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
    const status = await waitFor('the budget in the second window', () => options.budgetShown(second), options.timeoutMs);
    const text = options.outputLog();
    if (count(text, REUSE_LINE) !== 1 || count(text, SETUP_LINE) !== 1) {
        fail(`the second window did not reuse the private environment: ${count(text, REUSE_LINE)} reuse and ${count(text, SETUP_LINE)} setup lines`);
    }
    if (readEnvMarker(options.userData)?.marker.createdAt !== options.createdAt) {
        fail('the second window replaced the private environment');
    }
    log(`second window: status bar ${status}; ${/Reusing the private environment [^(]*/.exec(text)?.[0] ?? ''}`);
    await second.close();
}

/** After the first window's server started: one setup, from the bundled wheels, finished with its marker. */
export function checkSetUpOnce(userData: string, text: string, plain: PlainPython): { file: string; marker: EnvMarker } {
    const setUp = readEnvMarker(userData) ?? fail('the private environment has no marker after the server started');
    if (setUp.marker.python !== plain.python) {
        fail(`the private environment was made with ${setUp.marker.python}, not with the plain Python first on PATH (${plain.python})`);
    }
    if (count(text, SETUP_LINE) !== 1 || count(text, SET_UP_LINE) !== 1 || setUp.marker.bundle === null) {
        const lines = text.split('\n').filter((l) => /private environment|Setup:/.test(l));
        fail(`expected one setup from the bundled wheels; the log says:\n${lines.join('\n')}`);
    }
    log(`${/Set up the private environment .*/.exec(text)?.[0] ?? ''} (Python ${setUp.marker.pythonVersion} from ${setUp.marker.python})`);
    return setUp;
}
