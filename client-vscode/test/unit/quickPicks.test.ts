import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { agentItems, budgetScopeItems, defaultGoal, periodItems, runItems } from '../../src/common/quickPicks';
import type { AgentInfo } from '../../src/common/protocol';

const review: AgentInfo = {
    name: 'review',
    description: 'Reviews code for bugs, risky constructs and unclear naming',
    source: 'builtin',
    path: '/site-packages/agentls/builtin_agents/review.yaml',
    mode: 'answer',
    codeAction: 'Review selection',
};
const document: AgentInfo = {
    name: 'document',
    description: 'Adds or improves docstrings',
    source: 'workspace',
    path: '/ws/.agentls/agents/document.yaml',
    mode: 'edit',
};

describe('agentItems', () => {
    test('labels each agent with its name, description and source', () => {
        const [item] = agentItems([review]);
        assert.equal(item.label, 'review');
        assert.equal(item.description, review.description);
        assert.equal(item.detail, 'built-in · answers');
        assert.equal(item.agent, review);
    });
    test('shows where a non-built-in agent is defined and that it edits', () => {
        assert.equal(agentItems([document])[0].detail, 'workspace · /ws/.agentls/agents/document.yaml · edits the code');
    });
    test('keeps the server order', () => {
        assert.deepEqual(
            agentItems([review, document]).map((i) => i.label),
            ['review', 'document'],
        );
    });
});

describe('defaultGoal', () => {
    test("is the agent's description", () => {
        assert.equal(defaultGoal(review), review.description);
    });
    test('falls back to the code action title, then the name', () => {
        assert.equal(defaultGoal({ ...review, description: '' }), 'Review selection');
        assert.equal(defaultGoal({ name: 'x', description: '', source: 's' }), 'Run x');
    });
});

describe('runItems', () => {
    test('offers all runs first, then each run with its goal and age', () => {
        const items = runItems(
            [{ runId: 'abcdef1234', agent: 'review', goal: 'Review it', startedAt: 1000, parentRunId: null }],
            4000,
        );
        assert.equal(items[0].label, 'All runs');
        assert.equal(items[0].runId, undefined);
        assert.equal(items[0].description, '1 in progress');
        assert.equal(items[1].label, 'review');
        assert.equal(items[1].description, 'Review it');
        assert.equal(items[1].runId, 'abcdef1234');
        assert.match(items[1].detail ?? '', /started 3 s ago/);
    });
});

describe('budgetScopeItems', () => {
    test('lists the total, agents with usage, then agents without', () => {
        const items = budgetScopeItems(
            {
                used: 2000,
                limit: 100_000,
                remaining: 98_000,
                agents: { review: { used: 2000, limit: 12_000, remaining: 10_000 } },
            },
            [review, document],
        );
        assert.deepEqual(
            items.map((i) => [i.label, i.agent, i.description]),
            [
                ['Total', undefined, '2k / 100k tokens'],
                ['review', 'review', '2k / 12k tokens'],
                ['document', 'document', 'no tokens used yet'],
            ],
        );
    });
});

describe('setting a budget offers users and periods, as agentls budget set does', () => {
    test('lists you and any user after the total when setting', () => {
        const items = budgetScopeItems({ user: 'alice', used: 0, limit: null, remaining: null, agents: {} }, [review], { users: true });
        assert.deepEqual(
            items.map((i) => [i.label, i.agent, i.user, i.askUser]),
            [
                ['Total', undefined, undefined, undefined],
                ['You (alice)', undefined, 'alice', undefined],
                ['A user…', undefined, undefined, true],
                ['review', 'review', undefined, undefined],
            ],
        );
    });
    test('offers all time, day, week and month', () => {
        assert.deepEqual(
            periodItems.map((p) => p.per),
            [undefined, 'day', 'week', 'month'],
        );
    });
});
