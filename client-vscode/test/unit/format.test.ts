import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
    budgetLevel,
    budgetTooltip,
    formatBudget,
    formatCount,
    formatDuration,
    formatTokens,
    formatUsage,
    runWarningMessages,
} from '../../src/common/format';

describe('formatTokens', () => {
    test('keeps counts under a thousand as they are', () => {
        assert.equal(formatTokens(0), '0');
        assert.equal(formatTokens(999), '999');
    });
    test('shows thousands with one decimal below 100k', () => {
        assert.equal(formatTokens(12_300), '12.3k');
        assert.equal(formatTokens(1_234), '1.2k');
        assert.equal(formatTokens(12_000), '12k');
    });
    test('drops the decimal from 100k up', () => {
        assert.equal(formatTokens(100_000), '100k');
        assert.equal(formatTokens(123_456), '123k');
    });
    test('switches to millions instead of showing 1000k', () => {
        assert.equal(formatTokens(999_999), '1M');
        assert.equal(formatTokens(1_500_000), '1.5M');
    });
});

describe('formatBudget', () => {
    test('shows used over limit like the status bar', () => {
        assert.equal(formatBudget(12_300, 100_000), '12.3k / 100k');
    });
    test('shows infinity when there is no limit', () => {
        assert.equal(formatBudget(850, null), '850 / ∞');
    });
});

describe('budgetLevel', () => {
    test('is normal below 80 % of the limit', () => {
        assert.equal(budgetLevel(79_999, 100_000), 'normal');
    });
    test('warns from 80 %', () => {
        assert.equal(budgetLevel(80_000, 100_000), 'warning');
    });
    test('is an error at the limit', () => {
        assert.equal(budgetLevel(100_000, 100_000), 'error');
        assert.equal(budgetLevel(120_000, 100_000), 'error');
    });
    test('is normal without a limit', () => {
        assert.equal(budgetLevel(10 ** 9, null), 'normal');
    });
});

describe('budgetTooltip', () => {
    test('lists agents by usage, biggest first', () => {
        const tooltip = budgetTooltip({
            used: 3000,
            limit: 100_000,
            remaining: 97_000,
            agents: {
                review: { used: 1000, limit: null, remaining: null },
                document: { used: 2000, limit: 12_000, remaining: 10_000 },
            },
        });
        assert.match(tooltip, /3,000 used of 100,000 \(3 %\)/);
        assert.ok(tooltip.indexOf('| document | 2,000 | 12,000 |') < tooltip.indexOf('| review | 1,000 | ∞ |'));
    });
    test('says so when no agent has run', () => {
        assert.match(budgetTooltip({ used: 0, limit: null, remaining: null, agents: {} }), /No agent has used tokens yet/);
    });
});

describe('formatDuration and formatUsage', () => {
    test('formats milliseconds, seconds and minutes', () => {
        assert.equal(formatDuration(850), '850 ms');
        assert.equal(formatDuration(2_345), '2.3 s');
        assert.equal(formatDuration(65_000), '1 min 5 s');
    });
    test('spells out every kind of token and marks estimates', () => {
        assert.equal(
            formatUsage({ inputTokens: 1000, cachedInputTokens: 200, outputTokens: 234, reasoningTokens: 0, total: 1234, estimated: true }),
            '1,234 tokens (input 1,000, cached 200, output 234, reasoning 0), estimated',
        );
        assert.equal(formatCount(1_234_567), '1,234,567');
    });
});

describe('runWarningMessages', () => {
    test('names the agent in each warning of a run, such as a provider overshoot', () => {
        const warnings = ['the model provider reported 900 output tokens for a call limited to 64'];
        assert.deepEqual(runWarningMessages({ agent: 'review', warnings }), [
            'review: the model provider reported 900 output tokens for a call limited to 64',
        ]);
    });
    test('is empty for a run without warnings (older servers send none)', () => {
        assert.deepEqual(runWarningMessages({ agent: 'review' }), []);
        assert.deepEqual(runWarningMessages({ agent: 'review', warnings: [' '] }), []);
    });
});
