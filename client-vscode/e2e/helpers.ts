/** What the end-to-end scenarios share: waiting, the scripted model server, processes, and reading VS Code's UI. */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import type { Locator, Page } from 'playwright-core';

export const clientDir = path.resolve(__dirname, '..');
export const repoRoot = path.resolve(clientDir, '..');
export const artifacts = path.join(__dirname, 'artifacts');
export const STEP_TIMEOUT_MS = 30_000;

export class Step {
    private n = 0;
    constructor(private readonly page: () => Page | undefined) {}

    async shot(name: string): Promise<void> {
        const page = this.page();
        this.n += 1;
        const file = path.join(artifacts, `${String(this.n).padStart(2, '0')}-${name}.png`);
        if (page) {
            await page.screenshot({ path: file }).catch((error: unknown) => log(`screenshot ${name} failed: ${String(error)}`));
            log(`screenshot ${path.relative(clientDir, file)}`);
        }
    }
}

export function log(message: string): void {
    console.log(`[e2e ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

export function fail(message: string): never {
    throw new Error(message);
}

export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            const port = typeof address === 'object' && address ? address.port : 0;
            server.close(() => resolve(port));
        });
    });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = STEP_TIMEOUT_MS): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
        try {
            const value = await probe();
            if (value !== undefined) {
                return value;
            }
        } catch (error) {
            lastError = error;
        }
        await new Promise((r) => setTimeout(r, 250));
    }
    return fail(`timed out after ${timeoutMs / 1000} s waiting for ${what}${lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})` : ''}`);
}

/** Starts the scripted model server; resolves with its base URL (…/v1). */
export function startModelServer(python: string, options: { text: string; requireKey: string }): Promise<{ process: ChildProcess; url: string }> {
    const child = spawn(
        python,
        [
            '-m',
            'tests.rig.scripted_openai',
            '--port',
            '0',
            '--latency',
            '1.5',
            '--text',
            options.text,
            '--require-key',
            options.requireKey,
            '--exit-on-stdin-eof',
        ],
        { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the scripted model server printed no URL in 30 s: ${stderr}`)), 30_000);
        let stdout = '';
        child.stdout?.on('data', (chunk: Buffer) => {
            stdout += chunk.toString();
            const match = /^URL (\S+)$/m.exec(stdout);
            if (match) {
                clearTimeout(timer);
                resolve({ process: child, url: match[1] });
            }
        });
        child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`the scripted model server exited with ${code}: ${stderr}`));
        });
    });
}

export async function scriptReplies(url: string, replies: unknown[]): Promise<void> {
    const response = await fetch(`${url.replace(/\/v1\/?$/, '')}/_script`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(replies),
    });
    if (!response.ok) {
        fail(`POST /_script answered ${response.status}: ${await response.text()}`);
    }
}

export function stopProcessGroup(child: ChildProcess | undefined): Promise<void> {
    if (!child?.pid || child.exitCode !== null) {
        return Promise.resolve();
    }
    const pid = child.pid;
    return new Promise((resolve) => {
        const killer = setTimeout(() => {
            try {
                process.kill(-pid, 'SIGKILL');
            } catch {
                // already gone
            }
            resolve();
        }, 5000);
        child.once('exit', () => {
            clearTimeout(killer);
            resolve();
        });
        try {
            process.kill(-pid, 'SIGTERM');
        } catch {
            clearTimeout(killer);
            resolve();
        }
    });
}

export function findFiles(dir: string, pattern: RegExp, found: string[] = []): string[] {
    if (!existsSync(dir)) {
        return found;
    }
    for (const name of readdirSync(dir)) {
        const full = path.join(dir, name);
        if (statSync(full).isDirectory()) {
            findFiles(full, pattern, found);
        } else if (pattern.test(name)) {
            found.push(full);
        }
    }
    return found;
}

/** The text of a Monaco editor's rendered lines (visible part only), with plain spaces. */
export async function editorText(editor: Locator): Promise<string> {
    const text = await editor.locator('.view-lines').innerText();
    return text.replace(/\u00a0/g, ' ');
}

export async function runCommand(page: Page, title: string): Promise<void> {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    await input.fill(`>${title}`);
    // Enter could pick another fuzzy match: click the row whose label is exactly the title.
    const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
    const row = page.locator('.quick-input-list .monaco-list-row', { has: page.locator('.label-name', { hasText: exact }) });
    await row.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    await row.first().click();
}

export async function statusText(page: Page): Promise<string> {
    return (await page.locator('[aria-label^="agentls budget"]').first().innerText()).trim();
}

/**
 * True when the output channel shows this client's line for an event (`[1a2b3c4d] review finished …`),
 * found with the Output view's own filter box, since protocol traces fill the channel.
 */
export async function outputShows(page: Page, agent: string, kind: string): Promise<boolean> {
    const filter = page.locator('.part.panel .viewpane-filter input').first();
    const wanted = `${agent} ${kind}`;
    if ((await filter.inputValue()) !== wanted) {
        await filter.fill(wanted);
        await page.waitForTimeout(300);
    }
    const text = await editorText(page.locator('.part.panel .monaco-editor').first());
    return new RegExp(`\\[[0-9a-zA-Z-]{1,8}\\] ${wanted}`).test(text);
}

/** Accepts the prefilled goal once its input has replaced the agent pick (Enter earlier would go to the pick). */
export async function acceptGoal(page: Page, agent: string): Promise<void> {
    await page.locator('.quick-input-widget .quick-input-title', { hasText: `Goal for ${agent}` }).waitFor({ state: 'visible' });
    await page.locator('.quick-input-widget input').press('Enter');
}

/** The status bar's budget text once the server has answered (`12 / 100k`), else undefined. */
export async function budgetShown(page: Page): Promise<string | undefined> {
    const text = await statusText(page);
    return /\d+(\.\d+)?[kM]? \/ /.test(text) ? text : undefined;
}
