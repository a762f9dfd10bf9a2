/**
 * End-to-end test in a real VS Code: code-server 4.100.3 with the packaged .vsix in a fresh profile,
 * driven by headless Chromium, against the scripted model server (tests/rig/scripted_openai.py).
 *
 * The machine has no agentls: no agentls.python, no agentls on PATH, only a plain Python (bundledServer.ts).
 * Scenario: the first activation sets up the server the extension carries (a progress notification),
 * a second window reuses it; Delegate Selection from the palette to the `document` agent → progress
 * notification, the edit in the editor, the status-bar budget changing, started/finished in the
 * output channel; a lightbulb action delegates to `review`; Set Budget… shows dollars (dollarBudget.ts).
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import {
    acceptGoal,
    artifacts,
    budgetShown,
    clientDir,
    editorText,
    fail,
    findFiles,
    freePort,
    log,
    outputShows,
    runCommand,
    scriptReplies,
    startModelServer,
    statusText,
    Step,
    STEP_TIMEOUT_MS,
    stopProcessGroup,
    waitFor,
} from './helpers';
import { checkDollarBudget } from './dollarBudget';
import { checkSecondWindowReuses, checkSetUpOnce, environment, makePlainPython, readEnvMarker, SETUP_TITLE } from './bundledServer';

const codeServer = path.join(__dirname, '.code-server', 'node_modules', '.bin', 'code-server');
const vsix = path.resolve(clientDir, process.env.AGENTLS_VSIX ?? 'agentls-linux-x64.vsix');
const python = path.resolve(clientDir, process.env.AGENTLS_PYTHON ?? '../.venv/bin/python');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TOTAL_TIMEOUT_MS = 420_000;
/** The first activation installs the bundled wheels (about 20-40 s here) before the server starts. */
const SETUP_TIMEOUT_MS = 180_000;

const SOURCE = ['def add(a, b):', '    return a + b', '', '', 'def mul(a, b):', '    return a * b', ''].join('\n');
const DOCSTRING = 'Return the sum of a and b.';
const REPLACEMENT = ['def add(a, b):', `    """${DOCSTRING}"""`, '    return a + b'].join('\n');
const REVIEW_ANSWER = 'mul is correct: it multiplies its two arguments.';
/** The model server refuses requests without this key: the run only works if the key reached the server. */
const API_KEY = `sk-e2e-${Math.random().toString(36).slice(2)}`;

let cleanup: () => Promise<void> = () => Promise.resolve();

async function main(): Promise<void> {
    if (!existsSync(codeServer)) {
        fail(`code-server is not installed: run scripts/setup-vscode-e2e.sh first (looked for ${codeServer})`);
    }
    if (!existsSync(vsix)) {
        fail(`${vsix} is missing: run npm run package:linux-x64 first`);
    }
    if (!existsSync(python)) {
        fail(`AGENTLS_PYTHON ${python} does not exist: set AGENTLS_PYTHON to a Python with agentls installed`);
    }
    if (!existsSync(chromiumPath)) {
        fail(`${chromiumPath} is missing: run scripts/setup-vscode-e2e.sh first`);
    }
    rmSync(artifacts, { recursive: true, force: true });
    mkdirSync(artifacts, { recursive: true });

    const tmp = mkdtempSync(path.join(os.tmpdir(), 'agentls-e2e-'));
    const workspaceDir = path.join(tmp, 'workspace');
    const userData = path.join(tmp, 'user-data');
    const extensionsDir = path.join(tmp, 'extensions');
    mkdirSync(workspaceDir);
    mkdirSync(path.join(userData, 'User'), { recursive: true });
    mkdirSync(extensionsDir);
    writeFileSync(path.join(workspaceDir, 'calc.py'), SOURCE);
    const plain = makePlainPython(path.join(tmp, 'plain-python'), python);
    log(`plain Python without agentls: ${plain.python}`);

    let model: { process: ChildProcess; url: string } | undefined;
    let server: ChildProcess | undefined;
    let browser: Browser | undefined;
    let page: Page | undefined;
    const step = new Step(() => page);
    let serverLog = '';
    cleanup = async () => {
        cleanup = () => Promise.resolve();
        await browser?.close().catch(() => undefined);
        await stopProcessGroup(server);
        if (model) {
            model.process.stdin?.end();
            model.process.kill('SIGTERM');
        }
        rmSync(tmp, { recursive: true, force: true });
    };
    try {
        model = await startModelServer(python, { text: REVIEW_ANSWER, requireKey: API_KEY });
        log(`scripted model server at ${model.url}`);
        await scriptReplies(model.url, [{ text: `Here is the documented code:\n\n\`\`\`python\n${REPLACEMENT}\n\`\`\`\n` }]);

        const settingsFile = path.join(userData, 'User', 'settings.json');
        writeFileSync(
            settingsFile,
            JSON.stringify(
                {
                    'agentls.model': 'scripted-model',
                    'agentls.budget.total': 100000,
                    'agentls.trace.server': 'verbose',
                    'security.workspace.trust.enabled': false,
                    'workbench.startupEditor': 'none',
                    'workbench.tips.enabled': false,
                    'workbench.welcomePage.walkthroughs.openOnInstall': false,
                    'extensions.autoCheckUpdates': false,
                    'extensions.autoUpdate': false,
                    'extensions.ignoreRecommendations': true,
                    'update.mode': 'none',
                    'telemetry.telemetryLevel': 'off',
                    'git.enabled': false,
                    'editor.lightbulb.enabled': 'on',
                    'chat.commandCenter.enabled': false,
                    'workbench.secondarySideBar.defaultVisibility': 'hidden',
                },
                null,
                2,
            ),
        );

        // code-server is a remote window: machine-overridable settings count in the remote (Machine)
        // settings; in the local user settings a second window's start makes VS Code drop them.
        mkdirSync(path.join(userData, 'Machine'));
        writeFileSync(path.join(userData, 'Machine', 'settings.json'), JSON.stringify({ 'agentls.baseUrl': model.url }, null, 2));

        const common = ['--user-data-dir', userData, '--extensions-dir', extensionsDir];
        const install = spawnSync(codeServer, [...common, '--install-extension', vsix], { encoding: 'utf8', timeout: 120_000 });
        if (install.status !== 0) {
            fail(`installing the .vsix failed (${install.status}): ${install.stdout}${install.stderr}`);
        }
        log(`installed ${path.basename(vsix)}: ${install.stdout.trim().split('\n').pop() ?? ''}`);

        const port = await freePort();
        const config = path.join(tmp, 'config.yaml');
        writeFileSync(config, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
        server = spawn(
            codeServer,
            [
                '--config',
                config,
                '--auth',
                'none',
                '--bind-addr',
                `127.0.0.1:${port}`,
                '--disable-telemetry',
                '--disable-update-check',
                '--disable-workspace-trust',
                '--disable-getting-started-override',
                '--log',
                'trace',
                ...common,
                workspaceDir,
            ],
            { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: environment(tmp, plain.bin) },
        );
        server.stdout?.on('data', (chunk: Buffer) => (serverLog += chunk.toString()));
        server.stderr?.on('data', (chunk: Buffer) => (serverLog += chunk.toString()));
        const base = `http://127.0.0.1:${port}`;
        await waitFor('code-server to answer /healthz', async () => ((await fetch(`${base}/healthz`).catch(() => undefined))?.ok ? true : undefined), 60_000);
        log(`code-server at ${base}`);

        browser = await chromium.launch({
            executablePath: chromiumPath,
            headless: true,
            args: [
                '--headless',
                '--no-sandbox',
                '--disable-gpu',
                '--disable-background-networking',
                '--disable-component-update',
                '--disable-sync',
                '--no-first-run',
            ],
        });
        const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
        page = await context.newPage();
        page.setDefaultTimeout(STEP_TIMEOUT_MS);
        await page.goto(`${base}/?folder=${encodeURIComponent(workspaceDir)}`);
        await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
        // Each window (extension host) has its own agentls.log.
        const outputLogs = () => new Map(findFiles(path.join(userData, 'logs'), /agentls\.log$/).map((f) => [f, readFileSync(f, 'utf8')]));
        const outputLog = () => [...outputLogs().values()].join('\n');

        // The extension activates on startup and sets up its server first, with a progress notification.
        const setupToast = page.locator('.notifications-toasts .notification-toast', { hasText: SETUP_TITLE });
        await setupToast.first().waitFor({ state: 'visible', timeout: 60_000 });
        log(`setup notification: ${(await setupToast.first().innerText()).replace(/\s+/g, ' ').trim()}`);
        await step.shot('setup-progress');
        // The status bar shows the budget once the server answers.
        const initialStatus = await waitFor('the agentls budget in the status bar', () => budgetShown(page!), SETUP_TIMEOUT_MS);
        log(`status bar: ${initialStatus}`);
        await step.shot('workbench');
        const setUp = checkSetUpOnce(userData, outputLog(), plain);

        // A second window starts its own server from the same environment, without setting it up again.
        const otherDir = path.join(tmp, 'other-window');
        mkdirSync(otherDir);
        await checkSecondWindowReuses({
            context,
            base,
            folder: otherDir,
            userData,
            outputLog,
            createdAt: setUp.marker.createdAt,
            budgetShown,
            timeoutMs: SETUP_TIMEOUT_MS,
        });

        // Set API Key: kept in secret storage; the server restarts with it.
        await runCommand(page, 'agentls: Set API Key');
        const keyInput = page.locator('.quick-input-widget input[type="password"]');
        await keyInput.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await keyInput.fill(API_KEY);
        await step.shot('api-key');
        await keyInput.press('Enter');
        await waitFor('the server to restart with the API key', () =>
            Promise.resolve(/Restarting the server: the API key changed[\s\S]*Server started\./.test(outputLog()) ? true : undefined),
        );
        log('server restarted with the API key');

        // Open calc.py from the explorer and select the `add` function (its two lines).
        await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'calc.py' }).first().click();
        const editor = page.locator('.editor-instance .monaco-editor').first();
        await waitFor('calc.py in the editor', async () => ((await editorText(editor)).includes('def add') ? true : undefined));
        await editor.locator('.view-lines').click();
        await page.keyboard.press('Control+Home');
        await page.keyboard.press('Shift+ArrowDown');
        await page.keyboard.press('Shift+End');
        await step.shot('selection');

        await runCommand(page, 'agentls: Delegate Selection…');
        const agentRow = page.locator('.quick-input-list .monaco-list-row', {
            has: page.locator('.label-name', { hasText: /^document$/ }),
        });
        await agentRow.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await step.shot('agent-pick');
        await agentRow.first().click();

        const goal = page.locator('.quick-input-widget input');
        await waitFor('the goal input, prefilled', async () => ((await goal.inputValue()).length > 0 ? true : undefined));
        log(`goal: ${await goal.inputValue()}`);
        await step.shot('goal');
        await goal.press('Enter');

        const progress = page.locator('.notifications-toasts .notification-toast', { hasText: 'document' });
        await progress.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await page.waitForTimeout(300); // let the toast finish sliding in for the screenshot
        log(`progress notification: ${(await progress.first().innerText()).replace(/\s+/g, ' ').trim()}`);
        await step.shot('progress');

        await waitFor(`the docstring in the editor`, async () => ((await editorText(editor)).includes(DOCSTRING) ? true : undefined));
        log('the edit is applied in the editor');
        const changedStatus = await waitFor('the status bar budget to change', async () => {
            const text = await statusText(page!);
            return text !== initialStatus && /\d/.test(text) ? text : undefined;
        });
        log(`status bar: ${initialStatus} → ${changedStatus}`);
        await step.shot('edit-applied');

        await runCommand(page, 'agentls: Show Logs');
        await page.keyboard.press('Escape');
        await runCommand(page, 'View: Toggle Maximized Panel');
        for (const kind of ['started', 'finished']) {
            await waitFor(`the ${kind} event of document in the output channel`, async () =>
                (await outputShows(page!, 'document', kind)) ? true : undefined,
            );
            await step.shot(`output-document-${kind}`);
        }
        log('output channel shows document started … finished');
        await runCommand(page, 'View: Toggle Maximized Panel');

        // Lightbulb: select `mul` and take the review agent's code action.
        await editor.locator('.view-lines').click();
        await page.keyboard.press('Control+End');
        await page.keyboard.press('Shift+ArrowUp');
        await page.keyboard.press('Shift+ArrowUp');
        await page.keyboard.press('Shift+Home');
        await page.keyboard.press('Control+.');
        const action = page.locator('.action-widget .monaco-list-row', { hasText: /Ask review/ });
        await action.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await step.shot('lightbulb');
        // A pointer block covers the menu until the mouse moves: pick the row with the keyboard.
        const wanted = (await action.first().getAttribute('aria-label')) ?? 'Ask review';
        await waitFor(`"${wanted}" focused in the code action menu`, async () => {
            const focused = await page!.locator('.action-widget .monaco-list-row.focused').first().getAttribute('aria-label');
            if (focused === wanted) {
                return true;
            }
            await page!.keyboard.press('ArrowDown');
            return undefined;
        });
        await page.keyboard.press('Enter');

        const answered = page.locator('.notifications-toasts .notification-toast', { hasText: /review answered/ });
        await answered.first().waitFor({ state: 'visible', timeout: 60_000 });
        log(`review toast: ${(await answered.first().innerText()).replace(/\s+/g, ' ').trim()}`);
        await runCommand(page, 'agentls: Show Logs');
        for (const kind of ['started', 'finished']) {
            await waitFor(`the ${kind} event of review in the output channel`, async () =>
                (await outputShows(page!, 'review', kind)) ? true : undefined,
            );
        }
        log('output channel shows review started … finished');
        await step.shot('lightbulb-delegated');

        // Cancel Run…: a run whose model hangs is cancelled from the palette.
        await scriptReplies(model.url, [{ hang: 30, then: { text: 'too late' } }]);
        await editor.locator('.view-lines').click();
        await page.keyboard.press('Control+A');
        await runCommand(page, 'agentls: Delegate Selection…');
        const explainRow = page.locator('.quick-input-list .monaco-list-row', { has: page.locator('.label-name', { hasText: /^explain$/ }) });
        await explainRow.first().click();
        await acceptGoal(page, 'explain');
        const explainProgress = page.locator('.notifications-toasts .notification-toast', { hasText: 'explain:' });
        await explainProgress.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await runCommand(page, 'agentls: Cancel Run…');
        const runRow = page.locator('.quick-input-list .monaco-list-row', { has: page.locator('.label-name', { hasText: /^explain$/ }) });
        await runRow.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await step.shot('cancel-run-pick');
        await runRow.first().click();
        const cancelled = page.locator('.notifications-toasts .notification-toast', { hasText: 'explain was cancelled' });
        await cancelled.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await explainProgress.first().waitFor({ state: 'hidden', timeout: STEP_TIMEOUT_MS });
        log('Cancel Run… cancelled the explain run and its progress notification closed');
        await step.shot('cancelled');

        // The status bar tooltip breaks the usage down per agent.
        await page.keyboard.press('Escape');
        await page.locator('[aria-label^="agentls budget"]').first().hover();
        const hover = page.locator('.monaco-hover, .workbench-hover', { hasText: 'agentls token budget' }).first();
        await hover.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        const hoverText = (await hover.innerText()).replace(/\s+/g, ' ');
        if (!/document/.test(hoverText) || !/review/.test(hoverText)) {
            fail(`the budget tooltip lacks the per-agent usage: ${hoverText}`);
        }
        log(`budget tooltip: ${hoverText}`);
        await step.shot('budget-tooltip');
        await checkDollarBudget(page, step); // Set Budget… $50 per month: the status bar shows dollars

        // One settings edit reaches the server once: one didChangeConfiguration, then one pull.
        const traceBefore = new Map([...outputLogs()].map(([file, text]) => [file, text.length]));
        const newTrace = () => [...outputLogs()].map(([file, text]) => text.slice(traceBefore.get(file) ?? 0)).join('\n');
        await runCommand(page, 'Preferences: Open User Settings');
        const settingsSearch = page
            .locator('.settings-editor .settings-header .monaco-editor textarea, .settings-editor .suggest-input-container textarea')
            .first();
        await settingsSearch.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await settingsSearch.fill('agentls.maxOutputTokens');
        const tokensInput = page.locator('.setting-item-contents', { hasText: 'Most output tokens one model call' }).locator('input').first();
        await tokensInput.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await tokensInput.fill('2048');
        await tokensInput.press('Tab');
        await waitFor('the server to pull the changed settings', () =>
            Promise.resolve(/Received request 'workspace\/configuration/.test(newTrace()) ? true : undefined),
        );
        // Every sender reacts to the same change event, before the server's pull can arrive.
        const sent = newTrace().split("Sending notification 'workspace/didChangeConfiguration'").length - 1;
        if (sent !== 1) {
            fail(`one settings edit sent ${sent} didChangeConfiguration notifications, expected 1`);
        }
        await page.keyboard.press('Escape');
        log('a settings edit reached the server once');

        // Multi-root: each folder is its own workspace. A file of the second folder runs in (and keeps
        // its state in) that folder, not the first.
        const secondDir = path.join(tmp, 'second');
        mkdirSync(secondDir);
        writeFileSync(path.join(secondDir, 'other.py'), 'def sub(a, b):\n    return a - b\n');
        const workspaceFile = path.join(tmp, 'two-folders.code-workspace');
        // The window opens with no folders (as after "Add Folder to Workspace…" in an empty
        // workspace) and then gets both: the status bar shows the budget of the first once they come.
        // (Opening a fresh workspace file with its folders races in code-server: the window may
        // render it before it has read them.)
        writeFileSync(workspaceFile, JSON.stringify({ folders: [] }));
        await scriptReplies(model.url, [{ text: 'It subtracts b from a.' }]);
        await page.goto(`${base}/?workspace=${encodeURIComponent(workspaceFile)}`);
        await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
        const noFolder = page.getByText('You have not yet added a folder to the workspace.');
        await noFolder.waitFor({ state: 'visible', timeout: 60_000 });
        // The server runs (and has tried to read a budget) but there is no folder to have one.
        await page.locator('[aria-label^="agentls budget: server running"]').first().waitFor({ state: 'visible', timeout: 60_000 });
        const noFolderStatus = await statusText(page);
        // Its tooltip says why there is no budget (hovered again until the failed read has set it).
        await waitFor('the status tooltip saying no folder is open', async () => {
            await page!.mouse.move(700, 300);
            await page!.locator('[aria-label^="agentls budget"]').first().hover();
            const tip = page!.locator('.monaco-hover, .workbench-hover', { hasText: 'no folder is open' }).first();
            return (await tip.waitFor({ state: 'visible', timeout: 2_000 }).then(() => true, () => undefined));
        });
        await page.mouse.move(700, 300);
        writeFileSync(workspaceFile, JSON.stringify({ folders: [{ path: workspaceDir }, { path: secondDir }] }));
        await noFolder.waitFor({ state: 'hidden', timeout: 60_000 });
        const twoFolderStatus = await waitFor('the budget once the window has its two folders', () => budgetShown(page!), 90_000);
        log(`two-folder window: "${noFolderStatus}" without folders, "${twoFolderStatus}" once they were added`);
        await page.keyboard.press('F1');
        const quickOpen = page.locator('.quick-input-widget input');
        await quickOpen.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await quickOpen.fill('other.py');
        await page.locator('.quick-input-list .monaco-list-row', { hasText: 'other.py' }).first().click();
        const otherEditor = page.locator('.editor-instance .monaco-editor').first();
        await waitFor('other.py in the editor', async () => ((await editorText(otherEditor)).includes('def sub') ? true : undefined));
        await otherEditor.locator('.view-lines').click();
        await page.keyboard.press('Control+A');
        await runCommand(page, 'agentls: Delegate Selection…');
        const explainPick = page.locator('.quick-input-list .monaco-list-row', { has: page.locator('.label-name', { hasText: /^explain$/ }) });
        await explainPick.first().click();
        await acceptGoal(page, 'explain');
        const explained = page.locator('.notifications-toasts .notification-toast', { hasText: /explain answered/ });
        await explained.first().waitFor({ state: 'visible', timeout: 60_000 });
        if (!existsSync(path.join(secondDir, '.agentls', 'audit.db'))) {
            fail('the run on a file of the second folder kept no state in that folder');
        }
        await step.shot('multi-root');
        log('multi-root: a file of the second folder ran in that folder');

        // A broken interpreter setting: the private environment would be made again with it, so the
        // server fails with one toast naming the fix, and the environment in place stays.
        const broken = path.join(tmp, 'no-such-python');
        await runCommand(page, 'Preferences: Open User Settings');
        const search = page.locator('.settings-editor .settings-header .monaco-editor textarea, .settings-editor .suggest-input-container textarea').first();
        await search.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await search.fill('agentls.python');
        // code-server is a remote window: machine-overridable settings live in the Remote tab.
        await page.locator('.settings-editor .settings-tabs-widget .action-label', { hasText: /^Remote/ }).first().click();
        const pythonInput = page.locator('.setting-item-contents', { hasText: 'Python interpreter for agentls' }).locator('input').first();
        await pythonInput.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await pythonInput.fill(broken);
        await pythonInput.press('Tab');
        const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'agentls could not set up its server' });
        await toast.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
        await page.waitForTimeout(1000);
        const toastText = (await toast.first().innerText()).replace(/\s+/g, ' ').trim();
        log(`error toast: ${toastText}`);
        if ((await toast.count()) !== 1) {
            fail(`expected one "agentls could not set up its server" toast, saw ${await toast.count()}`);
        }
        if (!toastText.includes(`agentls.python (${broken})`) || !toastText.includes('Fix: point agentls.python at') || !toastText.includes('Show Logs')) {
            fail(`the error toast lacks the interpreter, the fix or the Show Logs button: ${toastText}`);
        }
        if (readEnvMarker(userData)?.marker.createdAt !== setUp.marker.createdAt) {
            fail('a failed setup touched the private environment in place');
        }
        await step.shot('broken-interpreter');

        const channelLog = outputLog();
        writeFileSync(path.join(artifacts, 'agentls-output.log'), channelLog);
        if (channelLog.includes(API_KEY)) {
            fail('the API key reached the agentls log');
        }
        // The verbose protocol trace printed the initialize params, with the key redacted.
        if (!channelLog.includes('"apiKey": "«redacted»"')) {
            fail('the protocol trace shows no redacted apiKey: was the initialize request traced?');
        }
        log('the API key is redacted from the protocol trace and absent from settings.json');
        const settingsText = readFileSync(path.join(userData, 'User', 'settings.json'), 'utf8');
        if (settingsText.includes(API_KEY)) {
            fail('the API key reached settings.json');
        }
        log('PASS');
    } catch (error) {
        await step.shot('failure');
        writeFileSync(path.join(artifacts, 'code-server.log'), serverLog);
        for (const file of findFiles(path.join(userData, 'logs'), /\.log$/)) {
            if (/agentls|exthost|remoteexthost/i.test(file)) {
                writeFileSync(path.join(artifacts, path.relative(path.join(userData, 'logs'), file).split(path.sep).slice(1).join('-')), readFileSync(file));
            }
        }
        throw error;
    } finally {
        await cleanup();
    }
}

const watchdog = setTimeout(() => {
    console.error(`e2e: FAIL: the whole scenario took longer than ${TOTAL_TIMEOUT_MS / 1000} s`);
    void cleanup().finally(() => process.exit(1));
}, TOTAL_TIMEOUT_MS);

main().then(
    () => {
        clearTimeout(watchdog);
        process.exit(0);
    },
    (error: unknown) => {
        clearTimeout(watchdog);
        console.error(`e2e: FAIL: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
    },
);
