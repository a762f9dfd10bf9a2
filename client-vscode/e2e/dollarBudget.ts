/**
 * e2e step: Set Budget… sets your own monthly dollar limit ($50) and the status bar shows dollars
 * (`$0.00 / $50 month` or so next to the tokens), its tooltip the limit in dollars per month.
 * The scripted model has no price, and under a dollar limit an unpriced model is refused: the
 * step lifts the limit again ("none", per month) so the scenario's later runs go on.
 */

import type { Page } from 'playwright-core';
import { fail, log, runCommand, statusText, Step, STEP_TIMEOUT_MS, waitFor } from './helpers';

function row(page: Page, label: RegExp) {
    return page.locator('.quick-input-list .monaco-list-row', { has: page.locator('.label-name', { hasText: label }) }).first();
}

/** Set Budget… for yourself: `amount` (e.g. `$50`, `none`) per month. */
async function setMyMonthlyBudget(page: Page, amount: string): Promise<void> {
    await runCommand(page, 'agentls: Set Budget…');
    await row(page, /^You \(/).waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    await row(page, /^You \(/).click();
    await page.locator('.quick-input-widget .quick-input-title', { hasText: 'Budget of user' }).waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    const input = page.locator('.quick-input-widget input');
    await input.fill(amount);
    await input.press('Enter');
    await row(page, /^Per month$/).waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    await row(page, /^Per month$/).click();
}

export async function checkDollarBudget(page: Page, step: Step): Promise<void> {
    await page.mouse.move(700, 300);
    await setMyMonthlyBudget(page, '$50');
    const shown = await waitFor('the status bar to show the monthly dollar limit', async () => {
        const text = await statusText(page);
        return /(\$\d[\d,]*\.\d\d|<\$0\.01) \/ \$50 month/.test(text) ? text : undefined;
    });
    log(`status bar with a dollar limit: ${shown}`);
    await step.shot('dollar-budget');
    await page.locator('[aria-label^="agentls budget"]').first().hover();
    const hover = page.locator('.monaco-hover, .workbench-hover', { hasText: 'agentls token budget' }).first();
    await hover.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    const hoverText = (await hover.innerText()).replace(/\s+/g, ' ');
    if (!/\(you\)/.test(hoverText) || !/dollars/.test(hoverText) || !/per month/.test(hoverText)) {
        fail(`the budget tooltip does not list the monthly dollar limit: ${hoverText}`);
    }
    log(`budget tooltip with a dollar limit: ${hoverText}`);
    await page.mouse.move(700, 300);
    await setMyMonthlyBudget(page, 'none');
    await waitFor('the status bar to drop the lifted dollar limit', async () => {
        const text = await statusText(page);
        return /\d/.test(text) && !text.includes('$50') ? text : undefined;
    });
}
