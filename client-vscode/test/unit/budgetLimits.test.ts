import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { budgetStatusView, checkLimitText, formatDollars, formatDollarsExact } from '../../src/common/budgetLimits';
import type { BudgetLimit, BudgetSnapshot } from '../../src/common/protocol';

function limit(fields: Partial<BudgetLimit>): BudgetLimit {
    const base: BudgetLimit = {
        scope: 'x',
        appliesTo: 'total',
        name: null,
        unit: 'usd',
        period: 'month',
        window: '2026-12',
        limit: 50,
        used: 0,
        reserved: 0,
        remaining: 50,
    };
    const merged = { ...base, ...fields };
    return { ...merged, remaining: fields.remaining ?? Math.max(0, merged.limit - merged.used - merged.reserved) };
}

function snapshot(fields: Partial<BudgetSnapshot>): BudgetSnapshot {
    return { user: 'alice', used: 12_300, limit: null, remaining: null, reserved: 0, agents: {}, limits: [], ...fields };
}

describe('formatDollars', () => {
    test('shows cents, and a whole limit without them', () => {
        assert.equal(formatDollars(12.4), '$12.40');
        assert.equal(formatDollars(50, true), '$50');
        assert.equal(formatDollars(1234.5), '$1,234.50');
    });
    test('says a fraction of a cent is less than one', () => {
        assert.equal(formatDollars(0.000024), '<$0.01');
        assert.equal(formatDollars(0), '$0.00');
        assert.equal(formatDollarsExact(0.000024), '$0.000024');
    });
});

describe('the status bar with dollar limits', () => {
    test("shows the user's monthly dollar limit instead of unlimited tokens", () => {
        const view = budgetStatusView(
            snapshot({ limits: [limit({ appliesTo: 'user', name: 'alice', used: 12.4 })] }),
        );
        assert.equal(view.text, '$12.40 / $50 month');
        assert.equal(view.label, 'agentls budget: $12.40 / $50 month dollars');
        assert.equal(view.level, 'normal');
    });

    test('shows tokens and dollars when both are limited', () => {
        const view = budgetStatusView(
            snapshot({ limit: 100_000, remaining: 87_700, limits: [limit({ used: 12.4 })] }),
        );
        assert.equal(view.text, '12.3k / 100k · $12.40 / $50 month');
    });

    test('shows the dollar limit with the least left, and colours by the closest limit', () => {
        const view = budgetStatusView(
            snapshot({
                limits: [
                    limit({ limit: 500, used: 100 }),
                    limit({ appliesTo: 'user', name: 'alice', limit: 60, used: 50, period: 'month' }),
                    limit({ appliesTo: 'user', name: 'alice', limit: 5, used: 1, period: 'day', window: '2026-12-07' }),
                ],
            }),
        );
        assert.equal(view.text, '$1.00 / $5 day');
        assert.equal(view.level, 'warning', '$50 of $60 this month is over 80 %');
    });

    test("leaves out other users' and agents' limits, which do not bind this editor's calls", () => {
        const view = budgetStatusView(
            snapshot({
                limits: [
                    limit({ appliesTo: 'user', name: 'bob', limit: 1, used: 1 }),
                    limit({ appliesTo: 'agent', name: 'review', limit: 1, used: 1 }),
                ],
            }),
        );
        assert.equal(view.text, '12.3k / ∞');
        assert.equal(view.level, 'normal');
    });

    test('a periodic token limit tighter than the total is the one shown', () => {
        const view = budgetStatusView(
            snapshot({
                limit: 10_000_000,
                remaining: 9_987_700,
                limits: [limit({ unit: 'tokens', period: 'week', window: '2026-W49', limit: 2_000_000, used: 1_200_000 })],
            }),
        );
        assert.equal(view.text, '1.2M / 2M week');
    });

    test('the tooltip lists every limit in its own unit and period', () => {
        const view = budgetStatusView(
            snapshot({
                limits: [
                    limit({ appliesTo: 'user', name: 'alice', used: 0.000024 }),
                    limit({ appliesTo: 'agent', name: 'review', unit: 'tokens', period: null, window: null, limit: 9000, used: 120 }),
                ],
            }),
        );
        assert.match(view.tooltip, /\| user alice \(you\) \| dollars \| per month \(2026-12 UTC\) \| \$0\.000024 \| \$50\.00 \| \$50\.00 \|/);
        assert.match(view.tooltip, /\| agent review \| tokens \| all time \| 120 \| 9,000 \| 8,880 \|/);
        assert.ok(view.tooltip.trimEnd().endsWith('Click to show the budget.'));
    });

    test('a user name cannot break the tooltip table', () => {
        const view = budgetStatusView(snapshot({ limits: [limit({ appliesTo: 'user', name: 'x | y' })] }));
        assert.match(view.tooltip, /user x \\\| y/);
    });
});

describe('checkLimitText', () => {
    test('takes tokens, dollars and none', () => {
        for (const text of ['100k', '1.5M', '20,000', '$50', '$12.50', ' none ']) {
            assert.equal(checkLimitText(text), undefined, text);
        }
    });
    test('names what it takes otherwise', () => {
        assert.equal(checkLimitText('lots'), 'Enter tokens (100k, 1.5M), dollars ($50) or "none".');
        assert.ok(checkLimitText('$x'));
        assert.ok(checkLimitText('-5'));
    });
});
